// Router view, the centre of the app: the current token flows into the router, arcs grow to the
// K chosen experts (thickness and label = gate weight), shared experts are always lit, dropped
// pairs are red dashed arcs ending in a cross, and the residual path carries the token around.
//
// [SECTION] Geometry helpers
// [SECTION] Expert grid
// [SECTION] Cell grid
// [SECTION] Arcs
// [SECTION] Panel
#include <imgui.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <vector>

#include "app/gl_shaders.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"
#include "core/models/lm.h"

namespace moe::app {

namespace {

// [SECTION] Geometry helpers

constexpr int kArcSegments = 32;

ImVec2 lerp(ImVec2 a, ImVec2 b, float t) { return ImVec2(a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t); }

ImVec2 bezier(ImVec2 p0, ImVec2 p1, ImVec2 p2, ImVec2 p3, float t) {
    const float u = 1.0f - t;
    const float a = u * u * u, b = 3 * u * u * t, c = 3 * u * t * t, d = t * t * t;
    return ImVec2(a * p0.x + b * p1.x + c * p2.x + d * p3.x, a * p0.y + b * p1.y + c * p2.y + d * p3.y);
}

float smoothstep01(float t) {
    t = std::clamp(t, 0.0f, 1.0f);
    return t * t * (3.0f - 2.0f * t);
}

ImU32 text_on(ImU32 bg) {
    const ImVec4 c = ImGui::ColorConvertU32ToFloat4(bg);
    return 0.299f * c.x + 0.587f * c.y + 0.114f * c.z > 0.5f ? IM_COL32(0, 0, 0, 255)
                                                              : IM_COL32(255, 255, 255, 255);
}

void text_centered(ImDrawList* dl, ImFont* font, float size, ImVec2 center, ImU32 col, const char* s) {
    const ImVec2 ts = font->CalcTextSizeA(size, FLT_MAX, 0.0f, s);
    dl->AddText(font, size, ImVec2(center.x - ts.x * 0.5f, center.y - ts.y * 0.5f), col, s);
}

// Centred text shrunk (down to 60%) so it fits `max_w`: boxes stay labelled in small windows.
void text_fit(ImDrawList* dl, ImFont* font, float size, float max_w, ImVec2 center, ImU32 col, const char* s) {
    const float w = font->CalcTextSizeA(size, FLT_MAX, 0.0f, s).x;
    if (w > max_w && w > 0.0f) size = std::max(size * 0.6f, size * max_w / w);
    text_centered(dl, font, size, center, col, s);
}

// A label on a dark plate, readable over arcs and boxes; shrunk, then wrapped, to stay within
// `max_w` (FLT_MAX: no limit).
void plate_text(ImDrawList* dl, ImFont* font, float size, ImVec2 center, ImU32 col, const char* s,
                float max_w = FLT_MAX) {
    const FitText f = fit_text(font, size, max_w - 6.0f, s, 0.75f);
    const ImVec2 ts = f.extent;
    const ImVec2 a(center.x - ts.x * 0.5f - 3, center.y - ts.y * 0.5f - 1);
    dl->AddRectFilled(a, ImVec2(a.x + ts.x + 6, a.y + ts.y + 2), IM_COL32(10, 10, 14, 220), 3.0f);
    dl->AddText(font, f.size, ImVec2(a.x + 3, a.y + 1), col, s, nullptr, f.wrap);
}

void arrow_head(ImDrawList* dl, ImVec2 tip, ImVec2 dir, float size, ImU32 col) {
    const float len = std::sqrt(dir.x * dir.x + dir.y * dir.y);
    if (len <= 0.0f) return;
    const ImVec2 d(dir.x / len, dir.y / len);
    const ImVec2 n(-d.y, d.x);
    dl->AddTriangleFilled(tip, ImVec2(tip.x - d.x * size + n.x * size * 0.5f, tip.y - d.y * size + n.y * size * 0.5f),
                          ImVec2(tip.x - d.x * size - n.x * size * 0.5f, tip.y - d.y * size - n.y * size * 0.5f), col);
}

void cross(ImDrawList* dl, ImVec2 c, float r, ImU32 col, float thick) {
    dl->AddLine(ImVec2(c.x - r, c.y - r), ImVec2(c.x + r, c.y + r), col, thick);
    dl->AddLine(ImVec2(c.x - r, c.y + r), ImVec2(c.x + r, c.y - r), col, thick);
}

// [SECTION] Expert grid

struct ExpertGrid {
    ImVec2 origin;      // top-left of the expert area
    int cols = 1, rows = 1;
    float cell_w = 0, cell_h = 0;
    float box_w = 0, box_h = 0;

    ImVec2 cell_min(int e) const {
        const int col = e / rows, row = e % rows;  // column-major: E0..E(rows-1) down the first column
        return ImVec2(origin.x + col * cell_w, origin.y + row * cell_h);
    }
    ImVec2 box_min(int e) const {
        const ImVec2 c = cell_min(e);
        return ImVec2(c.x, c.y + (cell_h - box_h) * 0.5f);
    }
    ImVec2 box_max(int e) const {
        const ImVec2 b = box_min(e);
        return ImVec2(b.x + box_w, b.y + box_h);
    }
    ImVec2 box_left(int e) const {
        const ImVec2 b = box_min(e);
        return ImVec2(b.x, b.y + box_h * 0.5f);
    }
    ImVec2 cell_right(int e) const {
        const ImVec2 c = cell_min(e);
        return ImVec2(c.x + cell_w - 4.0f, c.y + cell_h * 0.5f);
    }
};

ExpertGrid layout_experts(int n_experts, ImVec2 a, ImVec2 b, float fs) {
    ExpertGrid g;
    g.origin = a;
    const float w = std::max(b.x - a.x, 40.0f), h = std::max(b.y - a.y, 20.0f);
    const float min_h = std::max(fs * 1.15f, 14.0f);
    const int max_rows = std::max(1, static_cast<int>(h / min_h));
    g.cols = (n_experts + max_rows - 1) / max_rows;
    g.rows = (n_experts + g.cols - 1) / g.cols;
    g.cell_w = w / static_cast<float>(g.cols);
    g.cell_h = std::min(h / static_cast<float>(g.rows), fs * 2.4f);
    // Centre the column vertically when it is shorter than the area.
    g.origin.y += (h - g.cell_h * static_cast<float>(g.rows)) * 0.5f;
    g.box_h = std::max(g.cell_h * 0.78f, 10.0f);
    g.box_w = std::min(g.cell_w * 0.42f, fs * 3.2f);
    return g;
}

// [SECTION] Cell grid
// Past kMaxBoxes experts (Granite's 32, OLMoE's 64, DeepSeek-V3's 256, Kimi K2's 384) a labelled
// box each no longer fits: the experts become a grid of square cells, coloured by router
// probability (the heatmap's viridis, darkened), the chosen K lit in their expert colour with
// a white frame and a gate tag; hovering any cell names it.
constexpr int kMaxBoxes = 16;

struct CellGrid {
    ImVec2 origin;    // top-left of cell 0
    int cols = 1, rows = 1;
    float side = 0;   // cell pitch; the drawn square leaves a gap

    ImVec2 cell_min(int e) const {
        return ImVec2(origin.x + side * static_cast<float>(e % cols), origin.y + side * static_cast<float>(e / cols));
    }
    float gap() const { return side >= 6.0f ? std::max(1.0f, side * 0.12f) : 0.0f; }
    ImVec2 center(int e) const {
        const ImVec2 m = cell_min(e);
        return ImVec2(m.x + side * 0.5f, m.y + side * 0.5f);
    }
};

// The largest square cells that fit n experts into the area, centred in it; row-major, so
// expert ids read left to right like text.
CellGrid layout_cells(int n, ImVec2 a, ImVec2 b) {
    const float w = std::max(b.x - a.x, 8.0f), h = std::max(b.y - a.y, 8.0f);
    CellGrid g;
    for (int cols = 1; cols <= n; ++cols) {
        const int rows = (n + cols - 1) / cols;
        const float side = std::min(w / static_cast<float>(cols), h / static_cast<float>(rows));
        if (side > g.side) {
            g.side = side;
            g.cols = cols;
            g.rows = rows;
        }
    }
    g.origin = ImVec2(a.x + (w - g.side * static_cast<float>(g.cols)) * 0.5f,
                      a.y + (h - g.side * static_cast<float>(g.rows)) * 0.5f);
    return g;
}

ImU32 darken(ImU32 c, float f) {
    const ImVec4 v = ImGui::ColorConvertU32ToFloat4(c);
    return ImGui::ColorConvertFloat4ToU32(ImVec4(v.x * f, v.y * f, v.z * f, v.w));
}

// The chosen experts named beside the cell grid, one line each in rank order ("E12 0.31"), a
// thin line from each cell to its line: at 256 experts a tag next to every lit cell does not
// fit (8 tags in a 16 x 16 grid of 12 px cells overlap), a list always does.
struct ChosenList {
    float x0 = 0, x1 = 0;  // the list's whole area (all its columns)
    float y0 = 0;          // top of the first line
    float row_h = 0, col_w = 0;
    float fs = 0;          // text size
    int rows = 1;          // lines per column
    int shown = 0;         // lines with an expert; the rest are summed up in one "+ M more" line
    int more = 0;
    ImVec2 line_min(int i) const {
        return ImVec2(x0 + col_w * static_cast<float>(i / rows), y0 + row_h * static_cast<float>(i % rows));
    }
};

// Room for n_pairs lines ending at x1 between y_top and y_bottom: lines packed closer and their
// text smaller (down to 70%) before a second column, and only past two columns (Soft routing
// chooses all N) does the last line say how many more.
ChosenList layout_chosen(int n_pairs, int n_experts, ImFont* font, float tag_fs, float x1, float y_top,
                         float y_bottom) {
    ChosenList l;
    const float avail = std::max(y_bottom - y_top, tag_fs);
    const int want = std::max(1, n_pairs);
    l.fs = std::clamp(avail / static_cast<float>(want) / 1.15f, tag_fs * 0.7f, tag_fs);
    l.row_h = std::clamp(avail / static_cast<float>(want), l.fs * 1.12f, l.fs * 1.3f);
    const int fit = std::max(1, static_cast<int>(avail / l.row_h));
    const int cols = n_pairs > fit ? 2 : 1;
    char widest[32];
    std::snprintf(widest, sizeof widest, "E%d 0.00", std::max(0, n_experts - 1));
    const float text_w = std::max(font->CalcTextSizeA(l.fs, FLT_MAX, 0.0f, widest).x,
                                  font->CalcTextSizeA(l.fs, FLT_MAX, 0.0f, "+ 000 more").x);
    l.col_w = text_w + l.fs * 1.6f;
    l.x1 = x1;
    l.x0 = x1 - l.col_w * static_cast<float>(cols);
    l.rows = cols == 1 ? std::min(fit, want) : std::min(fit, (want + 1) / 2);
    const int slots = l.rows * cols;
    l.shown = n_pairs <= slots ? n_pairs : slots - 1;
    l.more = n_pairs - l.shown;
    l.y0 = std::max(y_top, (y_top + y_bottom) * 0.5f - l.row_h * static_cast<float>(l.rows) * 0.5f);
    return l;
}

// [SECTION] Arcs

struct ArcStyle {
    ImU32 col;
    float thickness;
    bool dashed;
};

// Draws the first `progress` (0..1) of a cubic from p0 to p3 with horizontal tangents, so arcs
// "grow" from the router toward the expert. Returns the curve's tip.
ImVec2 draw_arc(ImDrawList* dl, ImVec2 p0, ImVec2 p3, float progress, const ArcStyle& st) {
    const float dx = (p3.x - p0.x) * 0.5f;
    const ImVec2 p1(p0.x + dx, p0.y), p2(p3.x - dx, p3.y);
    ImVec2 pts[kArcSegments + 1];
    const float cut = progress * kArcSegments;
    int n = 0;
    for (int i = 0; i <= kArcSegments && static_cast<float>(i) <= cut; ++i) pts[n++] = bezier(p0, p1, p2, p3, static_cast<float>(i) / kArcSegments);
    if (n < kArcSegments + 1 && progress > 0.0f) pts[n++] = bezier(p0, p1, p2, p3, progress);
    if (n < 2) return p0;
    if (st.dashed) {
        for (int i = 0; i + 1 < n; ++i)
            if ((i / 2) % 2 == 0) dl->AddLine(pts[i], pts[i + 1], st.col, st.thickness);
    } else {
        dl->AddPolyline(pts, n, st.col, 0, st.thickness);
    }
    return pts[n - 1];
}

}  // namespace

// [SECTION] Panel

void draw_router(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    ViewState& view = ctx.view;
    const RoutingTrace* trp = begin_trace_panel(snap, view.layer);
    if (trp == nullptr) return;
    const RoutingTrace& tr = *trp;
    const int n_experts = tr.n_experts;
    const int cur = clamped_cursor(view, tr.n_tokens);
    const auto pairs = tr.token_pairs(cur);
    const int n_shared = ctx.session.model().info().moe.n_shared;
    const bool shared_on = snap.knobs.shared_experts && n_shared > 0;
    const int block = view.layer < static_cast<int>(snap.forward.trace_layer.size())
                          ? snap.forward.trace_layer[static_cast<size_t>(view.layer)] : view.layer;

    // Headline: where we are and under which rules.
    char kbuf[48];
    if (tr.scheme == Scheme::ExpertChoice)
        std::snprintf(kbuf, sizeof kbuf, "K varies (experts pick tokens)");
    else
        std::snprintf(kbuf, sizeof kbuf, "K = %d of %d experts", tr.k, n_experts);
    char capbuf[48];
    if (tr.capacity < 0) std::snprintf(capbuf, sizeof capbuf, "dropless (no limit)");
    else std::snprintf(capbuf, sizeof capbuf, "capacity %d per expert", tr.capacity);
    {
        char head[256];
        std::snprintf(head, sizeof head, "MoE layer %d (block %d)  |  %s  |  %s  |  %s", view.layer, block,
                      scheme_label(tr.scheme), kbuf, capbuf);
        text_wrapped_before_teach(head);
    }
    teach(scheme_tooltip(tr.scheme));

    // Canvas.
    ImVec2 size = ImGui::GetContentRegionAvail();
    size.x = std::max(size.x, 360.0f);
    size.y = std::max(size.y, 220.0f);
    const ImVec2 c0 = ImGui::GetCursorScreenPos();
    ImGui::InvisibleButton("##router_canvas", size);
    const bool canvas_hovered = ImGui::IsItemHovered();
    const ImVec2 c1(c0.x + size.x, c0.y + size.y);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->PushClipRect(c0, c1, true);
    ImFont* font = ImGui::GetFont();
    const float fs = ImGui::GetFontSize();
    ImFont* big = font_large();
    const float big_fs = std::min(big->FontSize, size.y * 0.2f);

    // Legend: the reading guide for a newcomer, wrapped to the canvas (its height shapes the rest).
    char legend[320];
    {
        const int n_pairs = static_cast<int>(pairs.size());
        const int n_drop = static_cast<int>(std::count_if(pairs.begin(), pairs.end(), [](const RoutedPair& p) { return p.dropped; }));
        std::snprintf(legend, sizeof legend,
                      "This token went to %d expert%s (%d kept). Arc thickness and number = gate weight. "
                      "%s Red dashed arc + X = dropped (expert full).%s",
                      n_pairs, n_pairs == 1 ? "" : "s", n_pairs - n_drop,
                      n_experts > kMaxBoxes ? "Cell brightness = router probability (hover a cell)."
                                            : "Bar = router probability.",
                      n_shared > 0 ? " White box = shared expert." : "");
    }
    const FitText legend_fit = fit_text(font, fs * 0.85f, size.x - 12.0f, legend, 1.0f);

    const float lane_y = c0.y + fs * 1.0f;                 // the residual path runs here
    const float top = c0.y + fs * 2.4f;
    const float legend_h = legend_fit.extent.y + fs * 0.5f;
    const float shared_h = n_shared > 0 ? fs * 2.8f : 0.0f;
    const float bottom = c1.y - legend_h - shared_h;
    const float mid_y = (top + bottom) * 0.5f;
    const float W = size.x;

    // Token box.
    const float tok_w = std::max(W * 0.11f, big_fs * 2.2f);
    const ImVec2 tok0(c0.x + W * 0.02f, mid_y - big_fs * 1.1f), tok1(tok0.x + tok_w, mid_y + big_fs * 1.1f);
    dl->AddRectFilled(tok0, tok1, IM_COL32(40, 44, 60, 255), 6.0f);
    dl->AddRect(tok0, tok1, IM_COL32(255, 255, 255, 230), 6.0f, 0, 2.0f);
    {
        // The tokenizer's piece (a BPE piece of any width, "<C3>" for part of a character),
        // as the token strip shows it.
        const DisplayPieces& pc = display_pieces(ctx.session, snap);
        const std::string& glyph = pc.screen[static_cast<size_t>(cur)];
        const std::string detail = pc.partial[static_cast<size_t>(cur)] ? "part of a character" : "";
        // Shrunk to 60% (text_fit), and past that cut with "...": a long piece stays in its box.
        const std::string shown = fit_piece(big, big_fs * 0.6f, tok_w - 8.0f, glyph);
        text_fit(dl, big, big_fs, tok_w - 8.0f, ImVec2((tok0.x + tok1.x) * 0.5f, mid_y - big_fs * 0.15f),
                 IM_COL32(255, 255, 255, 255), shown.c_str());
        report_drawn("router token %d %s", cur, shown.c_str());
        char idx[32];
        std::snprintf(idx, sizeof idx, "token %d", cur);
        text_centered(dl, font, fs * 0.85f, ImVec2((tok0.x + tok1.x) * 0.5f, tok1.y - fs * 0.55f),
                      IM_COL32(190, 190, 200, 255), idx);
        if (!detail.empty())
            text_centered(dl, font, fs * 0.8f, ImVec2((tok0.x + tok1.x) * 0.5f, tok1.y + fs * 0.6f),
                          IM_COL32(170, 170, 180, 255), detail.c_str());
    }

    // Router box.
    const ImVec2 rt0(c0.x + W * 0.19f, mid_y - fs * 2.2f), rt1(c0.x + W * 0.33f, mid_y + fs * 2.2f);
    dl->AddRectFilled(rt0, rt1, IM_COL32(60, 60, 80, 255), 6.0f);
    dl->AddRect(rt0, rt1, IM_COL32(220, 220, 240, 255), 6.0f, 0, 2.0f);
    {
        const float box_w = rt1.x - rt0.x - 8.0f;
        const bool sig = tr.scheme == Scheme::SigmoidBias || tr.scheme == Scheme::Base;
        char pick[40];
        if (tr.scheme == Scheme::ExpertChoice) std::snprintf(pick, sizeof pick, "experts pick tokens");
        else if (tr.scheme == Scheme::Soft) std::snprintf(pick, sizeof pick, "mixes all %d", n_experts);
        else std::snprintf(pick, sizeof pick, "picks top-%d of %d", tr.k, n_experts);
        text_fit(dl, font, fs * 1.2f, box_w, ImVec2((rt0.x + rt1.x) * 0.5f, mid_y - fs * 0.9f),
                 IM_COL32(255, 255, 255, 255), "Router");
        text_fit(dl, font, fs * 0.85f, box_w, ImVec2((rt0.x + rt1.x) * 0.5f, mid_y + fs * 0.3f),
                 IM_COL32(200, 200, 215, 255), sig ? "s = sigmoid(Wx)" : "p = softmax(Wx)");
        text_fit(dl, font, fs * 0.85f, box_w, ImVec2((rt0.x + rt1.x) * 0.5f, mid_y + fs * 1.2f),
                 IM_COL32(200, 200, 215, 255), pick);
    }
    {
        const ImVec2 a(tok1.x + 2, mid_y), b(rt0.x - 2, mid_y);
        dl->AddLine(a, b, IM_COL32(230, 230, 230, 255), 3.0f);
        arrow_head(dl, b, ImVec2(1, 0), fs * 0.7f, IM_COL32(230, 230, 230, 255));
    }

    // Sum node: y = x + shared + sum of gated experts.
    const ImVec2 sum_c(c0.x + W * 0.935f, mid_y);
    const float sum_r = fs * 1.1f;

    // Experts.
    const ImVec2 ea(c0.x + W * 0.42f, top), eb(c0.x + W * 0.86f, bottom);
    const bool as_cells = n_experts > kMaxBoxes;
    const ExpertGrid g = layout_experts(as_cells ? 1 : n_experts, ea, eb, fs);
    const float tag_fs = fs * 0.85f;
    const ChosenList chosen = layout_chosen(static_cast<int>(pairs.size()), n_experts, font, tag_fs, eb.x, top, bottom);
    const CellGrid cg = layout_cells(as_cells ? n_experts : 1, ea, ImVec2(chosen.x0 - fs * 0.8f, eb.y));
    const float cell_fs = std::min(fs, g.box_h * 0.8f);
    float max_p = 0.0f;
    for (int e = 0; e < n_experts; ++e) max_p = std::max(max_p, tr.probs(cur, e));
    if (!(max_p > 0.0f)) max_p = 1.0f;
    int hovered_expert = -1;
    const ImVec2 mouse = ImGui::GetMousePos();
    // Layers: arcs behind (channel 0), boxes and labels in front (channel 1), so an arc to
    // the right column passes behind the left column's boxes instead of hiding one. The cell
    // grid draws its arcs over the cells (channel 2): an arc into the middle of a 16 x 16 grid
    // would otherwise vanish behind it; the lit cells and the chosen list go over the arcs
    // (channel 3), so no later arc or line hides a lit cell's colour.
    dl->ChannelsSplit(4);
    dl->ChannelsSetCurrent(1);
    if (as_cells) {
        const float gap = cg.gap();
        for (int e = 0; e < n_experts; ++e) {
            const ImVec2 m = cg.cell_min(e);
            const ImVec2 m1(m.x + cg.side - gap, m.y + cg.side - gap);
            const float t = std::clamp(tr.probs(cur, e) / max_p, 0.0f, 1.0f);
            dl->AddRectFilled(m, m1, darken(gl::viridis(t), 0.7f));
            if (canvas_hovered && mouse.x >= m.x && mouse.x < m.x + cg.side && mouse.y >= m.y && mouse.y < m.y + cg.side)
                hovered_expert = e;
            // Ids where they fit; with 256 experts only the lit cells' tags and hovering name them.
            if (cg.side >= fs * 1.7f) {
                char lab[12];
                std::snprintf(lab, sizeof lab, "%d", e);
                text_fit(dl, font, std::min(fs * 0.7f, cg.side * 0.4f), cg.side - gap - 2.0f,
                         ImVec2((m.x + m1.x) * 0.5f, (m.y + m1.y) * 0.5f), IM_COL32(210, 210, 220, 200), lab);
            }
            report_drawn("router cell E%d %.1f %.1f %.1f %.1f", e, m.x, m.y, m1.x - m.x, m1.y - m.y);
            if (e == view.look_at_expert) mark_look_at(dl, "router expert", e, m, m1);
        }
        if (hovered_expert >= 0) {
            const ImVec2 m = cg.cell_min(hovered_expert);
            dl->AddRect(m, ImVec2(m.x + cg.side - gap, m.y + cg.side - gap), IM_COL32(255, 255, 255, 200), 0.0f, 0, 1.5f);
        }
    }
    for (int e = 0; e < n_experts && !as_cells; ++e) {
        const RoutedPair* pr = nullptr;
        for (const RoutedPair& p : pairs)
            if (p.expert == e) pr = &p;
        const ImVec2 b0 = g.box_min(e), b1 = g.box_max(e);
        const ImVec2 cm = g.cell_min(e);
        if (canvas_hovered && mouse.x >= cm.x && mouse.x < cm.x + g.cell_w && mouse.y >= cm.y &&
            mouse.y < cm.y + g.cell_h)
            hovered_expert = e;
        const bool lit = pr != nullptr && !pr->dropped;
        if (pr != nullptr)
            report_drawn("router lit E%d %.1f %.1f %.1f %.1f gate %.3f%s", e, b0.x, b0.y, b1.x - b0.x, b1.y - b0.y,
                         pr->gate, pr->dropped ? " dropped" : "");
        if (lit) {
            const float pulse = 0.5f + 0.5f * std::sin(static_cast<float>(view.time_s) * 4.0f);
            dl->AddRectFilled(ImVec2(b0.x - 3, b0.y - 3), ImVec2(b1.x + 3, b1.y + 3),
                              expert_color(e, 0.25f + 0.2f * pulse), 5.0f);
            dl->AddRectFilled(b0, b1, expert_color(e), 4.0f);
        } else {
            dl->AddRectFilled(b0, b1, kColorIdle, 4.0f);
            dl->AddRect(b0, b1, expert_color(e, 0.8f), 4.0f, 0, 1.5f);
        }
        if (e == view.look_at_expert) mark_look_at(dl, "router expert", e, b0, b1);
        char lab[12];
        std::snprintf(lab, sizeof lab, "E%d", e);
        text_centered(dl, font, cell_fs, ImVec2((b0.x + b1.x) * 0.5f, (b0.y + b1.y) * 0.5f),
                      lit ? text_on(expert_color(e)) : expert_color(e), lab);

        // Router probability beside the box.
        const float p = tr.probs(cur, e);
        const float bar_x0 = b1.x + 4.0f;
        const float bar_max = std::max(g.cell_w - g.box_w - 10.0f, 4.0f);
        const float text_w = font->CalcTextSizeA(cell_fs * 0.85f, FLT_MAX, 0.0f, "0.00").x + 4.0f;
        const bool room_for_text = bar_max > text_w * 2.0f;
        const float bar_len = (room_for_text ? bar_max - text_w : bar_max) * std::clamp(p / max_p, 0.0f, 1.0f);
        const float bh = std::max(g.box_h * 0.35f, 3.0f);
        const float by = (b0.y + b1.y) * 0.5f - bh * 0.5f;
        dl->AddRectFilled(ImVec2(bar_x0, by), ImVec2(bar_x0 + bar_len, by + bh),
                          lit ? expert_color(e, 0.9f) : IM_COL32(150, 150, 160, 200), 1.0f);
        if (room_for_text) {
            char pb[16];
            std::snprintf(pb, sizeof pb, "%.2f", p);
            dl->AddText(font, cell_fs * 0.85f, ImVec2(bar_x0 + bar_len + 3.0f, by + bh * 0.5f - cell_fs * 0.45f),
                        IM_COL32(190, 190, 200, 255), pb);
        }
    }

    // Residual path: the token always also goes around the layer (y = x + FFN(x)). When a pair
    // was dropped it is the only way that part of the token gets through, so it lights up.
    bool all_dropped = false;
    const bool any_drop = token_has_drop(tr, cur, &all_dropped);
    {
        // all_dropped also covers a token no expert picked (Expert Choice): residual only.
        const bool lit_path = any_drop || all_dropped;
        const ImU32 col = lit_path ? IM_COL32(255, 255, 255, 255) : IM_COL32(160, 160, 170, 150);
        const float thick = lit_path ? 3.0f : 1.5f;
        const ImVec2 p0((tok0.x + tok1.x) * 0.5f, tok0.y), p1(p0.x, lane_y), p2(sum_c.x, lane_y),
            p3(sum_c.x, sum_c.y - sum_r);
        dl->AddLine(p0, p1, col, thick);
        dl->AddLine(p1, p2, col, thick);
        dl->AddLine(p2, p3, col, thick);
        arrow_head(dl, p3, ImVec2(0, 1), fs * 0.6f, col);
        const char* res_text = all_dropped ? "residual only: no expert took this token"
                               : any_drop  ? "residual: dropped part skipped, token still goes around"
                                           : "residual: the token also goes around (y = x + ...)";
        plate_text(dl, font, fs * 0.85f, ImVec2((p1.x + p2.x) * 0.5f, lane_y),
                   lit_path ? kColorDropped : IM_COL32(190, 190, 200, 255), res_text, p2.x - p1.x - fs);
        // A dot travelling along the path shows the direction of flow.
        const float total = (p1.y - p0.y < 0 ? p0.y - p1.y : p1.y - p0.y) + (p2.x - p1.x) + (p3.y - p2.y);
        if (total > 0.0f) {
            float s = std::fmod(static_cast<float>(view.time_s) * 0.35f, 1.0f) * total;
            const float l0 = p0.y - p1.y, l1 = p2.x - p1.x;
            ImVec2 dot = s < l0 ? lerp(p0, p1, s / l0) : (s < l0 + l1 ? lerp(p1, p2, (s - l0) / l1)
                                                                  : lerp(p2, p3, (s - l0 - l1) / std::max(p3.y - p2.y, 1.0f)));
            dl->AddCircleFilled(dot, lit_path ? 5.0f : 3.0f, col);
        }
    }

    // Shared experts: no router, weight 1, every token.
    if (n_shared > 0) {
        const ImVec2 s0(ea.x, bottom + fs * 0.6f), s1(ea.x + std::max(g.box_w, fs * 5.0f), bottom + fs * 2.4f);
        const ImU32 fill = shared_on ? kColorShared : kColorIdle;
        dl->AddRectFilled(s0, s1, fill, 4.0f);
        dl->AddRect(s0, s1, kColorShared, 4.0f, 0, 1.5f);
        char sb[32];
        if (n_shared > 1) std::snprintf(sb, sizeof sb, "shared x%d", n_shared);
        else std::snprintf(sb, sizeof sb, "shared");
        text_fit(dl, font, fs * 0.9f, s1.x - s0.x - 6.0f, ImVec2((s0.x + s1.x) * 0.5f, (s0.y + s1.y) * 0.5f),
                 shared_on ? IM_COL32(0, 0, 0, 255) : kColorShared, sb);
        char sl[96];
        if (shared_on)
            std::snprintf(sl, sizeof sl, "%d shared expert%s, weight 1, always on (no router)", n_shared,
                          n_shared > 1 ? "s" : "");
        else
            std::snprintf(sl, sizeof sl, "%d shared expert%s switched OFF in the controls", n_shared,
                          n_shared > 1 ? "s" : "");
        const ImVec2 from((tok0.x + tok1.x) * 0.5f, tok1.y + (tok1.y < s0.y - fs ? 0.0f : 0.0f));
        const ImVec2 to(s0.x, (s0.y + s1.y) * 0.5f);
        if (shared_on) {
            const ArcStyle st{kColorShared, 3.0f, false};
            draw_arc(dl, ImVec2(from.x, to.y), to, 1.0f, st);
            dl->AddLine(from, ImVec2(from.x, to.y), kColorShared, 3.0f);
            const ImVec2 out(s1.x, (s0.y + s1.y) * 0.5f);
            const ImU32 faint = (kColorShared & 0x00FFFFFFu) | 0x78000000u;
            dl->AddLine(ImVec2(out.x, out.y), ImVec2(sum_c.x, out.y), faint, 2.0f);
            dl->AddLine(ImVec2(sum_c.x, out.y), ImVec2(sum_c.x, sum_c.y + sum_r), faint, 2.0f);
        }
        {
            // On a plate over the shared output line, between the box and the sum node.
            const float x_l = s1.x + 8.0f, x_r = sum_c.x - sum_r - 8.0f;
            if (x_r - x_l > fs * 3.0f) {
                const FitText f = fit_text(font, fs * 0.85f, x_r - x_l - 6.0f, sl, 0.75f);
                plate_text(dl, font, fs * 0.85f, ImVec2(x_l + f.extent.x * 0.5f + 3.0f, (s0.y + s1.y) * 0.5f),
                           IM_COL32(235, 235, 240, 255), sl, x_r - x_l);
            }
        }
    }

    // Arcs from the router to the chosen experts; kept ones also feed the sum.
    const float grow = smoothstep01(view.anim_t);
    const ImVec2 r_out(rt1.x, mid_y);
    int n_kept = 0;
    // Each pair's line in the chosen list: its rank among this token's pairs (0 = first choice).
    std::vector<int> rank_order(pairs.size());
    {
        std::vector<int> idx(pairs.size());
        for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int>(i);
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return pairs[a].rank < pairs[b].rank; });
        for (size_t i = 0; i < idx.size(); ++i) rank_order[static_cast<size_t>(idx[i])] = static_cast<int>(i);
    }
    if (as_cells && chosen.more > 0) {
        dl->ChannelsSetCurrent(3);
        char mb[48];
        std::snprintf(mb, sizeof mb, "+ %d more", chosen.more);
        const ImVec2 at = chosen.line_min(chosen.shown);
        dl->AddText(font, chosen.fs, ImVec2(at.x + 3.0f, at.y), IM_COL32(200, 200, 210, 255), mb);
    }
    for (const RoutedPair& p : pairs) {
        if (p.expert < 0 || p.expert >= n_experts) continue;
        const ImVec2 target = as_cells ? cg.center(p.expert) : g.box_left(p.expert);
        // Later ranks start a little later, so the order of choice is visible.
        const float prog = smoothstep01(grow * 1.3f - 0.3f * static_cast<float>(p.rank) /
                                                           std::max(1.0f, static_cast<float>(pairs.size())));
        const float thick = std::clamp(1.5f + 9.0f * p.gate, 1.5f, 12.0f);
        dl->ChannelsSetCurrent(as_cells ? 2 : 0);
        if (p.dropped) {
            const ImVec2 tip = draw_arc(dl, r_out, target, prog, ArcStyle{kColorDropped, std::max(2.5f, thick * 0.6f), true});
            dl->ChannelsSetCurrent(as_cells ? 2 : 1);  // the cross sits on the box's edge, in front
            if (prog >= 1.0f && !as_cells) cross(dl, ImVec2(target.x - fs * 0.2f, target.y), fs * 0.45f, kColorDropped, 3.5f);
            (void)tip;
        } else {
            ++n_kept;
            draw_arc(dl, r_out, target, prog, ArcStyle{expert_color(p.expert, 0.9f), thick, false});
            if (prog >= 1.0f && !as_cells) {
                dl->AddLine(g.cell_right(p.expert), ImVec2(sum_c.x - sum_r, sum_c.y), expert_color(p.expert, 0.55f),
                            std::max(1.5f, thick * 0.4f));
            }
        }
        if (as_cells) {
            // The lit cell: its expert colour, a white frame (red and crossed when dropped); its
            // name and gate in the list beside the grid, tied to it by a thin line.
            dl->ChannelsSetCurrent(3);
            const ImVec2 m = cg.cell_min(p.expert);
            const float gap = cg.gap();
            const ImVec2 m1(m.x + cg.side - gap, m.y + cg.side - gap);
            dl->AddRectFilled(m, m1, expert_color(p.expert));
            const float frame = std::clamp(cg.side * 0.12f, 1.0f, 3.0f);
            dl->AddRect(ImVec2(m.x - frame * 0.5f, m.y - frame * 0.5f), ImVec2(m1.x + frame * 0.5f, m1.y + frame * 0.5f),
                        p.dropped ? kColorDropped : IM_COL32(255, 255, 255, 255), 0.0f, 0, frame);
            if (p.dropped) cross(dl, ImVec2((m.x + m1.x) * 0.5f, (m.y + m1.y) * 0.5f), cg.side * 0.4f, kColorDropped, 2.5f);
            report_drawn("router lit E%d %.1f %.1f %.1f %.1f gate %.3f%s", p.expert, m.x, m.y, m1.x - m.x, m1.y - m.y,
                         p.gate, p.dropped ? " dropped" : "");
            const int line = rank_order[static_cast<size_t>(&p - pairs.data())];
            if (line < chosen.shown) {
                const ImVec2 r0 = chosen.line_min(line);
                const ImVec2 r1(r0.x + chosen.col_w - 3.0f, r0.y + chosen.row_h - 2.0f);
                const float ym = (r0.y + r1.y) * 0.5f;
                const ImU32 text_col = p.dropped ? kColorDropped : IM_COL32(255, 255, 255, 255);
                const ImVec2 mid((m.x + m1.x) * 0.5f, (m.y + m1.y) * 0.5f);
                dl->ChannelsSetCurrent(1);  // over the plain cells, under the lit ones
                dl->AddLine(mid, ImVec2(r0.x, ym), expert_color(p.expert, 0.85f), 1.5f);
                dl->ChannelsSetCurrent(3);
                dl->AddRectFilled(r0, r1, IM_COL32(10, 10, 14, 230), 3.0f);
                const float sw = chosen.fs * 0.75f;
                dl->AddRectFilled(ImVec2(r0.x + 3.0f, ym - sw * 0.5f), ImVec2(r0.x + 3.0f + sw, ym + sw * 0.5f),
                                  expert_color(p.expert), 2.0f);
                if (p.dropped) cross(dl, ImVec2(r0.x + 3.0f + sw * 0.5f, ym), sw * 0.45f, IM_COL32(255, 255, 255, 255), 1.5f);
                char gl[32];
                std::snprintf(gl, sizeof gl, "E%d %.2f", p.expert, p.gate);
                const ImVec2 tp(r0.x + sw + 8.0f, ym - chosen.fs * 0.5f);
                dl->AddText(font, chosen.fs, tp, text_col, gl);
                report_drawn("router tag E%d %.1f %.1f %.1f %.1f %s", p.expert, tp.x, tp.y,
                             font->CalcTextSizeA(chosen.fs, FLT_MAX, 0.0f, gl).x, chosen.fs, gl);
                if (canvas_hovered && mouse.x >= r0.x && mouse.x < r1.x && mouse.y >= r0.y && mouse.y < r1.y)
                    hovered_expert = p.expert;
                if (!p.dropped && prog >= 1.0f) {
                    // Kept experts feed the sum from their line, so these lines never cross the grid.
                    dl->ChannelsSetCurrent(0);
                    dl->AddLine(ImVec2(r1.x, ym), ImVec2(sum_c.x - sum_r, sum_c.y), expert_color(p.expert, 0.55f),
                                std::max(1.5f, thick * 0.4f));
                }
            }
            continue;
        }
        dl->ChannelsSetCurrent(1);
        if (p.rank < 8 && prog > 0.6f) {
            char gl[32];
            // Dropped: the number in red; the red X and the legend say the rest, and a wider tag
            // would cover the left column's boxes.
            std::snprintf(gl, sizeof gl, "%.2f", p.gate);
            const float w = font->CalcTextSizeA(fs * 0.95f, FLT_MAX, 0.0f, gl).x;
            const ImVec2 at(target.x - w * 0.5f - 5.0f - (p.dropped ? fs * 0.7f : 0.0f), target.y);  // clear of the X
            plate_text(dl, font, fs * 0.95f, at, p.dropped ? kColorDropped : IM_COL32(255, 255, 255, 255), gl);
        }
    }
    (void)n_kept;
    dl->ChannelsMerge();

    // Sum node and output.
    dl->AddCircleFilled(sum_c, sum_r, IM_COL32(50, 50, 66, 255));
    dl->AddCircle(sum_c, sum_r, IM_COL32(235, 235, 245, 255), 0, 2.0f);
    text_centered(dl, font, fs * 1.3f, sum_c, IM_COL32(255, 255, 255, 255), "+");
    {
        const ImVec2 a(sum_c.x + sum_r, sum_c.y), b(c1.x - 4.0f, sum_c.y);
        dl->AddLine(a, b, IM_COL32(235, 235, 245, 255), 2.5f);
        arrow_head(dl, b, ImVec2(1, 0), fs * 0.6f, IM_COL32(235, 235, 245, 255));
        text_centered(dl, font, fs, ImVec2(sum_c.x, sum_c.y + sum_r + fs * 0.8f), IM_COL32(220, 220, 230, 255), "y");
    }

    dl->AddText(font, legend_fit.size, ImVec2(c0.x + 6.0f, c1.y - legend_h + fs * 0.3f), IM_COL32(200, 200, 210, 255),
                legend, nullptr, legend_fit.wrap);
    dl->PopClipRect();

    if (hovered_expert >= 0) {
        const int e = hovered_expert;
        ImGui::BeginTooltip();
        ImGui::TextColored(expert_color_vec(e), "Expert E%d", e);
        ImGui::Text("router probability for this token: %.3f", tr.probs(cur, e));
        if (tr.logits.rows() == tr.n_tokens && tr.logits.cols() == n_experts)
            ImGui::Text("router logit h: %.3f", tr.logits(cur, e));
        const RoutedPair* pr = nullptr;
        for (const RoutedPair& p : pairs)
            if (p.expert == e) pr = &p;
        if (pr == nullptr) ImGui::TextDisabled("not chosen for this token");
        else if (pr->dropped) ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kColorDropped), "chosen (rank %d, gate %.3f) but DROPPED: expert full", pr->rank + 1, pr->gate);
        else ImGui::Text("chosen, rank %d, gate weight %.3f", pr->rank + 1, pr->gate);
        if (tr.capacity >= 0)
            ImGui::Text("load in this batch: %d kept of %d wanted (capacity %d)", tr.expert_load[static_cast<size_t>(e)],
                        tr.expert_wanted[static_cast<size_t>(e)], tr.capacity);
        else
            ImGui::Text("load in this batch: %d tokens", tr.expert_load[static_cast<size_t>(e)]);
        ImGui::EndTooltip();
    }
}

}  // namespace moe::app
