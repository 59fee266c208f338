// Heatmap: router probability p for every (token, expert) of one layer. Rows = tokens (scroll),
// columns = experts. Chosen cells are outlined, dropped ones crossed in red, the current token's
// row is framed. The cells are one float texture coloured by shaders/heatmap.frag (a viridis
// ramp, the same as gl::viridis() for the legend), so 1,000 tokens x 384 experts cost one quad;
// labels and marks are drawn for the visible rows only. Past 32 experts a column can be 2 px:
// the view zooms to a column range (Ctrl+wheel, Shift+wheel pans, or the buttons above it), and
// the header marks the current token's chosen columns at any zoom.
//
// [SECTION] Column zoom
// [SECTION] Panel
#include <imgui.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>

#include "app/gl_shaders.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"

namespace moe::app {

namespace {

// [SECTION] Column zoom

constexpr int kZoomFrom = 32;     // past this many experts the zoom bar is shown
constexpr int kMinColumns = 8;    // zoomed in as far as this

struct ColumnRange {
    int first = 0, count = 0;
};

ColumnRange column_range(const ViewState& view, int n_experts) {
    ColumnRange c;
    c.count = view.heat_n_cols <= 0 ? n_experts : std::clamp(view.heat_n_cols, std::min(kMinColumns, n_experts), n_experts);
    c.first = std::clamp(view.heat_first_col, 0, n_experts - c.count);
    return c;
}

// Zooms by `factor` (0.5: twice the width per column) keeping column `at` where it is.
void zoom_columns(ViewState& view, int n_experts, int at, float factor) {
    const ColumnRange c = column_range(view, n_experts);
    const int count = std::clamp(static_cast<int>(std::lround(static_cast<float>(c.count) * factor)),
                                 std::min(kMinColumns, n_experts), n_experts);
    const float rel = static_cast<float>(at - c.first) / static_cast<float>(std::max(1, c.count));
    view.heat_n_cols = count == n_experts ? 0 : count;
    view.heat_first_col = std::clamp(at - static_cast<int>(rel * static_cast<float>(count)), 0, n_experts - count);
}

// Pans by an eighth of the range, `dir` = -1 left / +1 right.
void pan_columns(ViewState& view, int n_experts, int dir) {
    const ColumnRange c = column_range(view, n_experts);
    view.heat_first_col = std::clamp(c.first + dir * std::max(1, c.count / 8), 0, n_experts - c.count);
}

// "E64..E95 (32 of 256)  [-] [+] [all]": what is shown and buttons for those without a wheel.
void draw_zoom_bar(ViewState& view, const ColumnRange& c, int n_experts) {
    char b[96];
    if (c.count == n_experts)
        std::snprintf(b, sizeof b, "all %d experts", n_experts);
    else
        std::snprintf(b, sizeof b, "E%d..E%d (%d of %d)", c.first, c.first + c.count - 1, c.count, n_experts);
    ImGui::TextUnformatted(b);
    const int mid = c.first + c.count / 2;
    ImGui::SameLine();
    if (ImGui::SmallButton("zoom in")) zoom_columns(view, n_experts, mid, 0.5f);
    ImGui::SameLine();
    ImGui::BeginDisabled(c.count == n_experts);
    if (ImGui::SmallButton("out")) zoom_columns(view, n_experts, mid, 2.0f);
    ImGui::SameLine();
    if (ImGui::SmallButton("<")) pan_columns(view, n_experts, -1);
    ImGui::SameLine();
    if (ImGui::SmallButton(">")) pan_columns(view, n_experts, 1);
    ImGui::SameLine();
    if (ImGui::SmallButton("all")) view.heat_n_cols = view.heat_first_col = 0;
    ImGui::EndDisabled();
    teach("With many experts a column is a pixel or two wide. Zoom to a range of experts: Ctrl+wheel over the "
          "heatmap zooms around the mouse, Shift+wheel moves along. The white marks over the columns are the "
          "experts the current token chose, at any zoom.");
}

}  // namespace

// [SECTION] Panel

void draw_heatmap(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    ViewState& view = ctx.view;
    const RoutingTrace* trp = begin_trace_panel(snap, view.layer);
    if (trp == nullptr) return;
    const RoutingTrace& tr = *trp;
    const int n_tokens = tr.n_tokens, n_experts = tr.n_experts;
    const int cur = clamped_cursor(view, n_tokens);
    const DisplayPieces& pc = display_pieces(ctx.session, snap);
    const bool sigmoid = tr.scheme == Scheme::SigmoidBias || tr.scheme == Scheme::Base;
    // Scale to the largest value present: with 64 experts a uniform softmax is 1/64, which on a
    // 0..1 scale would be one flat dark colour.
    const float p_max = std::max(tr.probs.maxCoeff(), 1e-6f);

    {
        char head[160];
        std::snprintf(head, sizeof head, "Router %s, layer %d: rows = tokens, columns = experts",
                      sigmoid ? "score s = sigmoid(h)" : "probability p = softmax(h)", view.layer);
        text_wrapped_before_teach(head);
    }
    teach("Each row is one token, each column one expert. Brighter = the router likes that expert more for "
          "that token. White outline = the expert was chosen; red cross = chosen but dropped for capacity. "
          "Columns that stay dark for every token are experts nobody uses.");

    // Colour legend.
    ImDrawList* dl = ImGui::GetWindowDrawList();
    ImFont* font = ImGui::GetFont();
    const float fs = ImGui::GetFontSize();
    {
        const ImVec2 a = ImGui::GetCursorScreenPos();
        const float w = std::min(ImGui::GetContentRegionAvail().x * 0.5f, fs * 14.0f), h = fs * 0.7f;
        const int steps = 32;
        for (int i = 0; i < steps; ++i) {
            const float x0 = a.x + fs * 1.6f + w * static_cast<float>(i) / steps;
            dl->AddRectFilled(ImVec2(x0, a.y + 2.0f), ImVec2(x0 + w / steps + 0.5f, a.y + 2.0f + h),
                              gl::viridis(static_cast<float>(i) / (steps - 1)));
        }
        dl->AddText(font, fs * 0.8f, ImVec2(a.x, a.y), IM_COL32(200, 200, 210, 255), "0");
        char b[32];
        std::snprintf(b, sizeof b, "%.3f (max)", p_max);
        dl->AddText(font, fs * 0.8f, ImVec2(a.x + fs * 1.9f + w, a.y), IM_COL32(200, 200, 210, 255), b);
        ImGui::Dummy(ImVec2(w + fs * 6.0f, h + 4.0f));
    }

    // Geometry shared by the fixed header and the scrolled rows.
    ImFont* mono = font_mono();
    const float label_fs = fs * 0.85f;
    // Row labels: "12 " and the token's piece, as wide as the widest piece up to 7 characters
    // (a longer BPE piece is cut with "..."; its tooltip has it whole).
    const float num_w = mono->CalcTextSizeA(label_fs, FLT_MAX, 0.0f, n_tokens > 999 ? "0000 " : "000 ").x;
    // Measured once per snapshot and font size, not every frame (1,000 pieces).
    static struct {
        uint64_t generation = ~0ull;
        float size = 0, width = 0;
    } widest;
    if (widest.generation != snap.generation || widest.size != label_fs) {
        const float piece_cap = mono->CalcTextSizeA(label_fs, FLT_MAX, 0.0f, "0000000").x;
        float w = mono->CalcTextSizeA(label_fs, FLT_MAX, 0.0f, "<E2>").x;
        for (size_t t = 0; t < pc.screen.size() && w < piece_cap; ++t)
            w = std::max(w, mono->CalcTextSizeA(label_fs, FLT_MAX, 0.0f, pc.screen[t].c_str()).x);
        widest = {snap.generation, label_fs, std::min(w, piece_cap)};
    }
    const float piece_w = widest.width;
    const float label_w = num_w + piece_w + 8.0f;
    const float avail_w = ImGui::GetContentRegionAvail().x - ImGui::GetStyle().ScrollbarSize - 8.0f;

    // The columns shown: all, or the zoomed range (at least 8 experts, or all when fewer).
    const ColumnRange cols = column_range(view, n_experts);
    if (n_experts > kZoomFrom) draw_zoom_bar(view, cols, n_experts);
    const int col0 = cols.first, n_cols = cols.count;
    // Down to 1 px per expert (384 experts fit a 1280 px window); wider cells up to 5 em.
    const float cell_w = std::clamp((avail_w - label_w) / static_cast<float>(n_cols), 1.0f, fs * 5.0f);
    const float cell_h = std::max(fs * 0.95f, 8.0f);
    const float cells_w = cell_w * static_cast<float>(n_cols);
    const auto shown = [&](int e) { return e >= col0 && e < col0 + n_cols; };

    // Column header: expert labels, thinned when columns are narrow.
    {
        const ImVec2 a = ImGui::GetCursorScreenPos();
        const float x_base = a.x + ImGui::GetStyle().WindowPadding.x + label_w;
        // As wide as the widest id ("E255"), so thinned labels never run into each other.
        char widest_id[16];
        std::snprintf(widest_id, sizeof widest_id, "E%d", std::max(0, n_experts - 1));
        const float lab_w = font->CalcTextSizeA(fs * 0.75f, FLT_MAX, 0.0f, widest_id).x + 2.0f;
        const int every = std::max(1, static_cast<int>(std::ceil(lab_w / cell_w)));
        for (int e = col0; e < col0 + n_cols; ++e) {
            const float x0 = x_base + cell_w * static_cast<float>(e - col0);
            const float g = cell_w >= 4.0f ? 1.0f : 0.0f;
            dl->AddRectFilled(ImVec2(x0 + g, a.y + fs * 0.95f), ImVec2(x0 + cell_w - g, a.y + fs * 1.2f), expert_color(e));
            // A label that would run past the last column (and the panel edge) is left out.
            if (e % every == 0 && x0 + lab_w <= x_base + cells_w + ImGui::GetStyle().ScrollbarSize) {
                char b[12];
                std::snprintf(b, sizeof b, "E%d", e);
                dl->AddText(font, fs * 0.75f, ImVec2(x0 + 1, a.y), expert_color(e), b);
            }
        }
        // The current token's chosen columns, marked below the colour strip at any zoom: at 2 px
        // a column is hard to follow down to its row (red: the pair was dropped).
        for (const RoutedPair& p : tr.token_pairs(cur)) {
            if (!shown(p.expert)) continue;
            const float xc = x_base + cell_w * (static_cast<float>(p.expert - col0) + 0.5f);
            const float half = std::max(cell_w * 0.5f, fs * 0.22f);
            dl->AddTriangleFilled(ImVec2(xc - half, a.y + fs * 1.22f), ImVec2(xc + half, a.y + fs * 1.22f),
                                  ImVec2(xc, a.y + fs * 1.55f), p.dropped ? kColorDropped : IM_COL32(255, 255, 255, 255));
            report_drawn("column mark E%d %.1f%s", p.expert, xc, p.dropped ? " dropped" : "");
        }
        ImGui::Dummy(ImVec2(label_w + cells_w, fs * 1.6f));
    }

    ImGui::BeginChild("##heat_rows", ImVec2(0, 0), true);
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    ImDrawList* cdl = ImGui::GetWindowDrawList();
    const float scroll_y = ImGui::GetScrollY();
    const float win_h = ImGui::GetWindowHeight();
    const int first = std::clamp(static_cast<int>(scroll_y / cell_h) - 1, 0, n_tokens);
    const int last = std::clamp(static_cast<int>((scroll_y + win_h) / cell_h) + 1, 0, n_tokens);
    const float x_cells = origin.x + label_w;
    // Below ~4 px a 1 px gap would eat the cell: adjacent cells then touch.
    const float gap = cell_w >= 4.0f ? 1.0f : 0.0f;

    // The cells: one textured quad, coloured per pixel by shaders/heatmap.frag, when the shader
    // compiled; else one rectangle per visible cell (the fallback the status bar announced).
    // A column's x on screen (the zoomed range starts at x_cells).
    const auto col_x = [&](int e) { return x_cells + cell_w * static_cast<float>(e - col0); };
    if (gl::heatmap_shader_ok()) {
        static gl::FloatTexture tex;
        const unsigned long long key = (snap.generation << 8) ^ static_cast<unsigned long long>(view.layer);
        if (!tex.current(key)) tex.update(key, tr.probs.data(), n_tokens, n_experts);  // Mat is row-major (tensor.h)
        gl::HeatmapQuad q;
        // The whole texture, placed so the shown columns land on the cells and clipped to them.
        q.p0 = ImVec2(col_x(0), origin.y);
        q.p1 = ImVec2(col_x(n_experts), origin.y + cell_h * static_cast<float>(n_tokens));
        q.value_max = p_max;
        q.gap_px = gap;
        cdl->PushClipRect(ImVec2(x_cells, origin.y), ImVec2(x_cells + cells_w, q.p1.y), true);
        gl::draw_heatmap(cdl, tex, q);
        cdl->PopClipRect();
    } else {
        for (int t = first; t < last; ++t) {
            const float y0 = origin.y + cell_h * static_cast<float>(t);
            for (int e = col0; e < col0 + n_cols; ++e) {
                const float x0 = col_x(e);
                cdl->AddRectFilled(ImVec2(x0, y0), ImVec2(x0 + cell_w - gap, y0 + cell_h - 1.0f),
                                   gl::viridis(tr.probs(t, e) / p_max));
            }
        }
    }

    report_drawn("heatmap %d x %d at %.1f %.1f cell %.2f x %.2f rows %d..%d shader %d cols %d..%d", n_tokens, n_experts,
                 x_cells, origin.y, cell_w, cell_h, first, last, gl::heatmap_shader_ok() ? 1 : 0, col0, col0 + n_cols - 1);

    // Labels and marks on top, for the visible rows only.
    for (int t = first; t < last; ++t) {
        const float y0 = origin.y + cell_h * static_cast<float>(t);
        char num[16];
        std::snprintf(num, sizeof num, n_tokens > 999 ? "%4d " : "%3d ", t);
        const std::string rl = num + fit_piece(mono, label_fs, piece_w, pc.screen[static_cast<size_t>(t)]);
        cdl->AddText(mono, label_fs, ImVec2(origin.x, y0 + (cell_h - label_fs) * 0.5f),
                     t == cur ? IM_COL32(255, 255, 255, 255) : IM_COL32(170, 170, 185, 255), rl.c_str());
        for (const RoutedPair& p : tr.token_pairs(t)) {
            if (!shown(p.expert)) continue;
            const float x0 = col_x(p.expert);
            const float x1 = x0 + std::max(cell_w - gap, 1.0f);
            if (cell_w < 5.0f) {
                // Too narrow for an outline: a solid white (kept) or red (dropped) tick.
                cdl->AddRectFilled(ImVec2(x0, y0), ImVec2(std::max(x1, x0 + 2.0f), y0 + cell_h - 1.0f),
                                   p.dropped ? kColorDropped : IM_COL32(255, 255, 255, 255));
            } else if (p.dropped) {
                const float m = std::min(cell_w, cell_h) * 0.15f;
                cdl->AddLine(ImVec2(x0 + m, y0 + m), ImVec2(x1 - m, y0 + cell_h - 1 - m), kColorDropped, 2.0f);
                cdl->AddLine(ImVec2(x0 + m, y0 + cell_h - 1 - m), ImVec2(x1 - m, y0 + m), kColorDropped, 2.0f);
            } else {
                cdl->AddRect(ImVec2(x0, y0), ImVec2(x1, y0 + cell_h - 1.0f), IM_COL32(255, 255, 255, 230), 0.0f, 0, 1.5f);
            }
        }
    }
    // Current token: a frame across its row.
    {
        const float y0 = origin.y + cell_h * static_cast<float>(cur);
        cdl->AddRect(ImVec2(origin.x - 2.0f, y0 - 1.0f), ImVec2(x_cells + cells_w + 1.0f, y0 + cell_h),
                     IM_COL32(255, 255, 255, 255), 2.0f, 0, 2.0f);
    }
    ImGui::Dummy(ImVec2(label_w + cells_w, cell_h * n_tokens));

    // Hover and click: one lookup from the mouse position, no per-cell widgets.
    if (ImGui::IsWindowHovered()) {
        const ImVec2 mouse = ImGui::GetMousePos();
        const int t = static_cast<int>((mouse.y - origin.y) / cell_h);
        const int e = col0 + static_cast<int>(std::floor((mouse.x - x_cells) / cell_w));
        // Ctrl+wheel zooms around the column under the mouse, Shift+wheel pans (the plain wheel
        // scrolls the rows).
        const float wheel = ImGui::GetIO().MouseWheel;
        if (wheel != 0.0f && n_experts > kZoomFrom && (ImGui::GetIO().KeyCtrl || ImGui::GetIO().KeyShift)) {
            const int at = std::clamp(e, col0, col0 + n_cols - 1);
            if (ImGui::GetIO().KeyCtrl) zoom_columns(view, n_experts, at, wheel > 0.0f ? 0.5f : 2.0f);
            else pan_columns(view, n_experts, wheel > 0.0f ? -1 : 1);
            ImGui::SetScrollY(scroll_y);  // the wheel zoomed: the rows must not scroll as well
        }
        if (mouse.y >= origin.y && t >= 0 && t < n_tokens) {
            if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) {
                if (view.cursor != t) view.anim_t = 0.0f;
                view.cursor = t;
                view.playing = false;
            }
            if (mouse.x >= x_cells && shown(e)) {
                ImGui::BeginTooltip();
                ImGui::Text("token %d: %s", t, piece_label(pc, t).c_str());
                ImGui::TextColored(expert_color_vec(e), "expert E%d", e);
                ImGui::Text("%s = %.4f", sigmoid ? "s" : "p", tr.probs(t, e));
                const RoutedPair* pr = nullptr;
                for (const RoutedPair& p : tr.token_pairs(t))
                    if (p.expert == e) pr = &p;
                if (pr == nullptr) ImGui::TextDisabled("not chosen");
                else if (pr->dropped) ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kColorDropped), "chosen, gate %.3f, DROPPED (expert full)", pr->gate);
                else ImGui::Text("chosen (rank %d), gate %.3f", pr->rank + 1, pr->gate);
                ImGui::TextDisabled("click: make this the current token");
                ImGui::EndTooltip();
            }
        }
    }

    // Follow the current token when it moves.
    static int last_cursor = -1;
    if (cur != last_cursor) {
        last_cursor = cur;
        const float y = cell_h * static_cast<float>(cur);
        if (y < scroll_y || y + cell_h > scroll_y + win_h) ImGui::SetScrollY(std::max(0.0f, y - win_h * 0.4f));
    }
    ImGui::EndChild();
}

}  // namespace moe::app
