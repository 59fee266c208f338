// Load bars: how many tokens each expert kept in this batch (or since reset), the capacity
// line, the overflow that was dropped stacked in red above it, and the balance numbers.
//
// [SECTION] Statistics
// [SECTION] Panel
#include <imgui.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"

namespace moe::app {

namespace {

// [SECTION] Statistics

struct LoadStats {
    double mean = 0, cv = 0, max_over_mean = 0;
};

// Same definitions as BatchStats (std / mean, max / mean of kept load), for the cumulative counts
// that have no BatchStats of their own.
LoadStats load_stats(const std::vector<int>& load) {
    LoadStats s;
    if (load.empty()) return s;
    double sum = 0, mx = 0;
    for (int v : load) {
        sum += v;
        mx = std::max(mx, static_cast<double>(v));
    }
    s.mean = sum / static_cast<double>(load.size());
    if (s.mean <= 0) return s;
    double var = 0;
    for (int v : load) var += (v - s.mean) * (v - s.mean);
    var /= static_cast<double>(load.size());
    s.cv = std::sqrt(var) / s.mean;
    s.max_over_mean = mx / s.mean;
    return s;
}

void dashed_hline(ImDrawList* dl, float x0, float x1, float y, ImU32 col, float dash, float thick) {
    for (float x = x0; x < x1; x += dash * 2.0f) dl->AddLine(ImVec2(x, y), ImVec2(std::min(x + dash, x1), y), col, thick);
}

}  // namespace

// [SECTION] Panel

void draw_load_bars(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    ViewState& view = ctx.view;
    const RoutingTrace* trp = begin_trace_panel(snap, view.layer);
    if (trp == nullptr) return;
    const RoutingTrace& tr = *trp;
    const int n_experts = tr.n_experts;

    // Narrow panel (1280x720 grid): the same numbers on fewer lines, hover text instead of (?)
    // markers, so the bars keep most of the height.
    const float need = font_large()->CalcTextSizeA(font_large()->FontSize, FLT_MAX, 0.0f,
                                                   "CV 0.00  max/mean 0.00  dropped 000/000").x;
    const bool wide = ImGui::GetContentRegionAvail().x > need + ImGui::GetFontSize() * 8.0f;
    const auto explain = [wide](const char* text) { wide ? teach(text) : teach_hover(text); };

    ImGui::Checkbox(wide ? "Cumulative since reset" : "Cumulative", &view.cumulative_load);
    explain("Off: the load of this one batch (the text you typed). On: kept tokens added up over every "
            "run since Reset, so you can watch a bias or a balancing method even out the experts.");
    same_line_if_fits(ImGui::CalcTextSize("Reset").x + ImGui::GetStyle().FramePadding.x * 2.0f);
    if (ImGui::Button("Reset")) ctx.session.reset_cumulative();
    // Past 16 experts the bars are thin: sorted, the shape of the imbalance reads at a glance
    // (a few tall bars and a long flat tail is collapse; a flat top is balance).
    const bool many = n_experts > 16;
    if (many) {
        same_line_if_fits(ImGui::CalcTextSize("Sorted").x + ImGui::GetFrameHeight() + ImGui::GetStyle().ItemInnerSpacing.x);
        ImGui::Checkbox("Sorted", &view.sort_load);
        explain("On: busiest expert first, so the shape of the imbalance shows. Off: experts in id order, "
                "so the same expert stays in the same place when you change the text or the knobs.");
    }
    const bool sorted = many && view.sort_load;

    // The counts to draw.
    const std::vector<int>* kept = &tr.expert_load;
    bool cumulative = false;
    if (view.cumulative_load) {
        const auto& cl = snap.cumulative_load;
        if (view.layer < static_cast<int>(cl.size()) &&
            cl[static_cast<size_t>(view.layer)].size() == static_cast<size_t>(n_experts)) {
            kept = &cl[static_cast<size_t>(view.layer)];
            cumulative = true;
        } else {
            const char* msg = "(no cumulative counts for this layer yet: showing this batch)";
            same_line_if_fits(ImGui::CalcTextSize(msg).x);
            ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
            ImGui::TextWrapped("%s", msg);
            ImGui::PopStyleColor();
        }
    }
    const LoadStats ls = load_stats(*kept);
    const float cv = cumulative ? static_cast<float>(ls.cv) : tr.stats.load_cv;
    const float mom = cumulative ? static_cast<float>(ls.max_over_mean) : tr.stats.max_over_mean;

    // The slot order (id order, or busiest first), and the busiest and idlest experts by name:
    // with 256 thin bars nobody can read which one is which.
    std::vector<int> order(static_cast<size_t>(n_experts));
    for (int e = 0; e < n_experts; ++e) order[static_cast<size_t>(e)] = e;
    const auto wanted_of = [&](int e) {
        const size_t i = static_cast<size_t>(e);
        return (*kept)[i] + (cumulative ? 0 : std::max(0, tr.expert_wanted[i] - tr.expert_load[i]));
    };
    if (sorted)
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return wanted_of(a) > wanted_of(b); });
    int most = 0, least = 0;
    for (int e = 1; e < n_experts; ++e) {
        if (wanted_of(e) > wanted_of(most)) most = e;
        if (wanted_of(e) < wanted_of(least)) least = e;
    }
    int n_idle = 0;
    for (int e = 0; e < n_experts; ++e) n_idle += (*kept)[static_cast<size_t>(e)] == 0 ? 1 : 0;
    // A short, narrow panel (256 experts in the 1280x720 grid, about 350 x 170 px; 8 experts beside
    // the first-run card, 250 x 160 px): every number in one small wrapped paragraph, their
    // explanations on hover, so the bars keep the height (three big lines left them 10 px).
    const bool compact = !wide && ImGui::GetContentRegionAvail().y < ImGui::GetFontSize() * 11.0f;
    if (compact) {
        char txt[200];
        const int n = std::snprintf(txt, sizeof txt, "CV %.2f   max/mean %.2f", cv, mom);
        if (!cumulative && n > 0)
            std::snprintf(txt + n, sizeof txt - static_cast<size_t>(n), "   dropped %d/%d", tr.stats.n_dropped, tr.stats.n_pairs);
        const size_t used = std::strlen(txt);
        if (many)
            std::snprintf(txt + used, sizeof txt - used, "   busiest E%d (%d)   idlest E%d (%d)   idle %d of %d", most,
                          wanted_of(most), least, wanted_of(least), n_idle, n_experts);
        ImFont* font = ImGui::GetFont();
        const float w = ImGui::GetContentRegionAvail().x;
        const ImVec2 at = ImGui::GetCursorScreenPos();
        const FitText f = fit_text(font, ImGui::GetFontSize() * 0.85f, w, txt, 1.0f);
        ImGui::GetWindowDrawList()->AddText(font, f.size, at, IM_COL32(235, 235, 240, 255), txt, nullptr, f.wrap);
        ImGui::Dummy(ImVec2(w, f.extent.y));
        teach_hover("CV: standard deviation / mean of the load over experts (0 = perfectly even). max/mean: the "
                    "busiest expert's load over the average (1.0 is ideal). dropped: (token, expert) pairs refused "
                    "for capacity. busiest / idlest: by the tokens the router sent them (kept + dropped); idle: "
                    "experts that got no token at all.");
        report_drawn("load summary %.1f %.1f %.1f %.1f", at.x, at.y, f.extent.x, f.extent.y);
        if (many)
            report_drawn("load most E%d %d least E%d %d sorted %d", most, wanted_of(most), least, wanted_of(least),
                         sorted ? 1 : 0);
    }
    // The balance numbers, big: the thing to read from the back of the room (normal size when
    // the panel is too narrow for three large numbers on one line).
    if (!compact) {
        ImFont* big = wide ? font_large() : ImGui::GetFont();
        ImGui::PushFont(big);
        ImGui::Text("CV %.2f", cv);
        ImGui::PopFont();
        explain("Coefficient of variation of the load: standard deviation / mean over experts. 0 = perfectly "
              "even; large = a few experts do most of the work (expert collapse).");
        // Each number starts a new line when the row is full, so none runs past the edge.
        const float gap = ImGui::GetFontSize() * (wide ? 2.0f : 1.0f);
        char txt[64];
        std::snprintf(txt, sizeof txt, "max/mean %.2f", mom);
        const float marker = wide ? teach_marker_width() : 0.0f;
        same_line_if_fits(big->CalcTextSizeA(big->FontSize, FLT_MAX, 0.0f, txt).x + marker, gap);
        ImGui::PushFont(big);
        ImGui::TextUnformatted(txt);
        ImGui::PopFont();
        explain("The busiest expert's load over the average load. With capacity, the busiest expert sets "
              "how long everyone waits: 1.0 is ideal.");
        if (!cumulative) {
            std::snprintf(txt, sizeof txt, "dropped %d/%d", tr.stats.n_dropped, tr.stats.n_pairs);
            same_line_if_fits(big->CalcTextSizeA(big->FontSize, FLT_MAX, 0.0f, txt).x + marker, gap);
            ImGui::PushFont(big);
            if (tr.stats.n_dropped > 0) ImGui::PushStyleColor(ImGuiCol_Text, ImGui::ColorConvertU32ToFloat4(kColorDropped));
            ImGui::TextUnformatted(txt);
            if (tr.stats.n_dropped > 0) ImGui::PopStyleColor();
            ImGui::PopFont();
            explain("(token, expert) pairs refused because the expert was already at capacity. A dropped pair "
                  "contributes nothing; the token still reaches the next layer through the residual.");
        }
    }

    if (many && !compact) {
        char txt[96];
        std::snprintf(txt, sizeof txt, "busiest E%d (%d)   idlest E%d (%d)   idle %d of %d", most, wanted_of(most), least,
                      wanted_of(least), n_idle, n_experts);
        // Wrapped (a 350 px panel at 1280x720 cut it at "idle 120 of 2"), room left for the marker.
        if (wide) text_wrapped_before_teach(txt);
        else ImGui::TextWrapped("%s", txt);
        report_drawn("load summary %.1f %.1f %.1f %.1f", ImGui::GetItemRectMin().x, ImGui::GetItemRectMin().y,
                     ImGui::GetItemRectSize().x, ImGui::GetItemRectSize().y);
        explain("The busiest and the least used expert of this layer, by the tokens the router sent them "
                "(kept + dropped), and how many experts got no token at all.");
        report_drawn("load most E%d %d least E%d %d sorted %d", most, wanted_of(most), least, wanted_of(least),
                     sorted ? 1 : 0);
    }

    // Canvas.
    ImVec2 size = ImGui::GetContentRegionAvail();
    size.x = std::max(size.x, 200.0f);
    size.y = std::max(size.y, ImGui::GetFontSize() * 3.0f);  // never taller than the panel: no cut-off
    // A short canvas (the 1280x720 and presenter grids) gives its height to the bars: no title and
    // no numbers above them (hover a bar for its numbers).
    const bool short_canvas = size.y < ImGui::GetFontSize() * 9.0f;
    const ImVec2 c0 = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton("##load_canvas", size);
    report_drawn("load canvas %.1f %.1f %.1f %.1f", c0.x, c0.y, size.x, size.y);
    const bool hovered = ImGui::IsItemHovered();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImFont* font = ImGui::GetFont();
    const float fs = ImGui::GetFontSize();
    const bool show_capacity = !cumulative && tr.capacity >= 0;
    const char* title = cumulative ? "tokens kept per expert, summed since reset"
                        : show_capacity ? (wide ? "tokens kept per expert in this batch (red hatched = over capacity, dropped)"
                                                : "tokens per expert (red hatched = dropped)")
                                        : (wide ? "tokens kept per expert in this batch (dropless: nothing is refused)"
                                                : "tokens per expert (dropless)");
    const FitText title_fit = fit_text(font, fs * 0.85f, size.x - fs * 3.0f - 4.0f, title, 0.85f);
    const float left = fs * 3.0f, right = fs * 6.5f, bottom_pad = fs * 1.6f;
    // Room for the title, then for the value and "+overflow" labels above the tallest bar.
    const float top_pad = short_canvas ? fs * 0.6f : title_fit.extent.y + fs * 2.0f;
    const ImVec2 p0(c0.x + left, c0.y + top_pad), p1(c0.x + size.x - right, c0.y + size.y - bottom_pad);
    const float plot_w = std::max(p1.x - p0.x, 10.0f), plot_h = std::max(p1.y - p0.y, 10.0f);

    double y_max = 1.0;
    for (int e = 0; e < n_experts; ++e) {
        const size_t i = static_cast<size_t>(e);
        const int over = cumulative ? 0 : std::max(0, tr.expert_wanted[i] - tr.expert_load[i]);
        y_max = std::max(y_max, static_cast<double>((*kept)[i] + over));
    }
    if (show_capacity) y_max = std::max(y_max, static_cast<double>(tr.capacity));
    y_max *= 1.12;
    auto y_of = [&](double v) { return p1.y - static_cast<float>(v / y_max) * plot_h; };

    // Axis and a few gridlines: as many as the height has room for numbers (a 60 px plot gets
    // one or two, never numbers drawn over each other).
    dl->AddLine(ImVec2(p0.x, p1.y), ImVec2(p1.x, p1.y), IM_COL32(180, 180, 190, 255), 1.5f);
    {
        const double n_ticks = std::clamp(std::floor(static_cast<double>(plot_h) / (fs * 1.1)), 1.0, 4.0);
        const double raw = y_max / (n_ticks + 1.0);
        const double mag = std::pow(10.0, std::floor(std::log10(std::max(raw, 1e-9))));
        const double step = std::max(1.0, std::ceil(raw / mag) * mag);
        for (double v = step; v < y_max; v += step) {
            const float y = y_of(v);
            dl->AddLine(ImVec2(p0.x, y), ImVec2(p1.x, y), IM_COL32(255, 255, 255, 25));
            char b[24];
            std::snprintf(b, sizeof b, "%.0f", v);
            const float tw = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, b).x;
            dl->AddText(font, fs * 0.8f, ImVec2(p0.x - tw - 4.0f, y - fs * 0.4f), IM_COL32(170, 170, 180, 255), b);
        }
    }

    const float slot = plot_w / static_cast<float>(n_experts);
    const float bar_w = std::max(slot * 0.72f, 1.0f);
    const float num_w = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, "000").x;
    const bool numbers_fit = slot > num_w && !short_canvas;
    // As wide as the widest id ("E255"), so thinned labels never run into each other.
    char widest_id[16];
    std::snprintf(widest_id, sizeof widest_id, "E%d", std::max(0, n_experts - 1));
    const float lab_w = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, widest_id).x + 4.0f;
    const int label_every = std::max(1, static_cast<int>(std::ceil(lab_w / slot)));
    const ImVec2 mouse = ImGui::GetMousePos();
    int hovered_e = -1;
    for (int s = 0; s < n_experts; ++s) {
        const int e = order[static_cast<size_t>(s)];
        const size_t i = static_cast<size_t>(e);
        const int k = (*kept)[i];
        const int over = cumulative ? 0 : std::max(0, tr.expert_wanted[i] - tr.expert_load[i]);
        const float x0 = p0.x + slot * static_cast<float>(s) + (slot - bar_w) * 0.5f, x1 = x0 + bar_w;
        const float yk = y_of(k);
        dl->AddRectFilled(ImVec2(x0, yk), ImVec2(x1, p1.y), expert_color(e), 2.0f);
        if (over > 0) {
            // Overflow: what the router wanted to send beyond capacity, stacked above and hatched.
            const float yo = y_of(k + over);
            dl->AddRectFilled(ImVec2(x0, yo), ImVec2(x1, yk), (kColorDropped & 0x00FFFFFFu) | 0x99000000u, 2.0f);
            dl->AddRect(ImVec2(x0, yo), ImVec2(x1, yk), kColorDropped, 2.0f, 0, 1.5f);
            dl->PushClipRect(ImVec2(x0, yo), ImVec2(x1, yk), true);
            for (float s = yo - bar_w; s < yk; s += 6.0f) dl->AddLine(ImVec2(x0, s + bar_w), ImVec2(x1, s), IM_COL32(255, 255, 255, 90), 1.0f);
            dl->PopClipRect();
        }
        if (numbers_fit) {
            char b[24];
            std::snprintf(b, sizeof b, "%d", k);
            const float tw = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, b).x;
            const float ty = over > 0 ? y_of(k + over) - fs * 1.7f : yk - fs * 0.95f;
            dl->AddText(font, fs * 0.8f, ImVec2((x0 + x1 - tw) * 0.5f, ty), IM_COL32(235, 235, 240, 255), b);
            if (over > 0) {
                std::snprintf(b, sizeof b, "+%d", over);
                const float ow = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, b).x;
                dl->AddText(font, fs * 0.8f, ImVec2((x0 + x1 - ow) * 0.5f, ty + fs * 0.8f), kColorDropped, b);
            }
        }
        // Many experts in a short plot: only the marked bars (busiest, idlest, selected) are
        // named under the axis; hovering names the rest.
        const bool marked = e == most || e == least || e == view.selected_expert;
        if (many && short_canvas ? marked : s % label_every == 0) {
            char b[12];
            std::snprintf(b, sizeof b, "E%d", e);
            const float tw = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, b).x;
            dl->AddText(font, fs * 0.8f, ImVec2((x0 + x1 - tw) * 0.5f, p1.y + 3.0f), expert_color(e), b);
        }
        // The expert picked in the overview, and the busiest and idlest ones: a frame and a tick
        // below the axis, so a 1-pixel bar can still be found.
        if (many && (e == most || e == least || e == view.selected_expert)) {
            const ImU32 mark = e == view.selected_expert ? IM_COL32(255, 255, 255, 255) : IM_COL32(255, 255, 255, 170);
            dl->AddRect(ImVec2(x0 - 1.5f, y_of(k + over) - 1.5f), ImVec2(x1 + 1.5f, p1.y + 1.5f), mark, 0.0f, 0, 1.5f);
        }
        if (e == view.look_at_expert) mark_look_at(dl, "load expert", e, ImVec2(x0, y_of(k + over)), ImVec2(x1, p1.y));
        if (hovered && mouse.x >= p0.x + slot * static_cast<float>(s) && mouse.x < p0.x + slot * static_cast<float>(s + 1))
            hovered_e = e;
    }

    // Label heights on the right: the capacity label wins, the even-share label moves below it
    // when the two lines are close (they often are: capacity = factor x even share).
    const float label_lo = c0.y, label_hi = c0.y + size.y - fs * 1.8f;
    const float cap_ty = show_capacity ? std::clamp(y_of(tr.capacity) - fs * 1.2f, label_lo, label_hi) : -FLT_MAX;
    // Even share: where every bar would be if the router balanced perfectly.
    if (ls.mean > 0) {
        const float y = y_of(ls.mean);
        for (float x = p0.x; x < p1.x; x += 4.0f) dl->AddLine(ImVec2(x, y), ImVec2(x + 1.5f, y), IM_COL32(220, 220, 230, 200), 1.5f);
        char b[48];
        std::snprintf(b, sizeof b, "even share %.1f", ls.mean);
        float ty = std::clamp(y - fs * 0.45f, label_lo, label_hi);
        if (std::fabs(ty - cap_ty) < fs * 1.0f) ty = cap_ty + fs * 1.0f;
        draw_fit_text(dl, font, fs * 0.8f, ImVec2(p1.x + 4.0f, ty), right - 8.0f, IM_COL32(220, 220, 230, 255), b);
    }
    if (show_capacity) {
        const float y = y_of(tr.capacity);
        dashed_hline(dl, p0.x - 4.0f, p1.x, y, IM_COL32(255, 255, 255, 255), 8.0f, 2.5f);
        char b[48];
        std::snprintf(b, sizeof b, "capacity %d", tr.capacity);
        const float ty = cap_ty;
        draw_fit_text(dl, font, fs * 0.9f, ImVec2(p1.x + 4.0f, ty), right - 8.0f, IM_COL32(255, 255, 255, 255), b);
    }
    if (!short_canvas)
        dl->AddText(font, title_fit.size, ImVec2(p0.x, c0.y + 2.0f), IM_COL32(200, 200, 210, 255), title, nullptr,
                    title_fit.wrap);

    if (hovered_e >= 0) {
        const size_t i = static_cast<size_t>(hovered_e);
        ImGui::BeginTooltip();
        if (short_canvas) ImGui::TextDisabled("%s", title);
        ImGui::TextColored(expert_color_vec(hovered_e), "Expert E%d", hovered_e);
        if (cumulative) {
            ImGui::Text("%d tokens kept since reset", (*kept)[i]);
        } else {
            ImGui::Text("kept %d tokens, wanted %d", tr.expert_load[i], tr.expert_wanted[i]);
            if (tr.expert_dropped[i] > 0)
                ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kColorDropped), "%d dropped over capacity %d",
                                   tr.expert_dropped[i], tr.capacity);
        }
        ImGui::EndTooltip();
    }
}

}  // namespace moe::app
