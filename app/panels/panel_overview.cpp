// Whole-model overview: every MoE layer at once. Top: the layers x experts load matrix (one row
// per MoE layer, each cell an expert's load over the even share), the picture MoE papers use to
// show specialisation and imbalance. Below: tokens x layers, each cell coloured by the token's
// top-1 expert in that layer, so a token's path through the model reads along a column.
// Clicking a cell selects its layer (and expert, and token) in every other view.
//
// Both maps are float textures drawn by shaders/heatmap.frag (one quad each); where the shader
// did not compile they fall back to rectangles.
//
// [SECTION] Matrices
// [SECTION] Map drawing
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

namespace moe::app {

namespace {

// [SECTION] Matrices

// (n_layers, n_experts) kept load / even share (kept pairs / n_experts); 1 = balanced.
std::vector<float> load_matrix(const Snapshot& snap, int n_experts, float* max_ratio) {
    const auto& traces = snap.forward.traces;
    std::vector<float> m(traces.size() * static_cast<size_t>(n_experts), 0.0f);
    *max_ratio = 1.0f;
    for (size_t l = 0; l < traces.size(); ++l) {
        const RoutingTrace& tr = traces[l];
        if (tr.n_experts != n_experts) continue;
        double kept = 0;
        for (int v : tr.expert_load) kept += v;
        const double even = kept / n_experts;
        if (even <= 0) continue;
        for (int e = 0; e < n_experts; ++e) {
            const float r = static_cast<float>(tr.expert_load[static_cast<size_t>(e)] / even);
            m[l * static_cast<size_t>(n_experts) + static_cast<size_t>(e)] = r;
            *max_ratio = std::max(*max_ratio, r);
        }
    }
    return m;
}

// The token's first-choice expert in a trace (rank 0), or -1 when it has none (Expert Choice).
int top1(const RoutingTrace& tr, int t) {
    int best = -1, best_rank = 1 << 30;
    for (const RoutedPair& p : tr.token_pairs(t))
        if (p.rank < best_rank) {
            best_rank = p.rank;
            best = p.expert;
        }
    return best;
}

// (n_layers, n_tokens) top-1 expert index, -1 for none.
std::vector<float> top1_matrix(const Snapshot& snap, int n_tokens) {
    const auto& traces = snap.forward.traces;
    std::vector<float> m(traces.size() * static_cast<size_t>(n_tokens), -1.0f);
    for (size_t l = 0; l < traces.size(); ++l) {
        const RoutingTrace& tr = traces[l];
        if (tr.n_tokens != n_tokens) continue;
        for (int t = 0; t < n_tokens; ++t) m[l * static_cast<size_t>(n_tokens) + static_cast<size_t>(t)] = static_cast<float>(top1(tr, t));
    }
    return m;
}

// Both matrices of one snapshot, computed when a new snapshot arrives, not every frame (64
// layers x 1,000 tokens is 512K pairs to scan; the textures upload on the same key).
struct Matrices {
    uint64_t generation = ~0ull;
    std::vector<float> load;  // (n_layers, n_experts)
    std::vector<float> top1;  // (n_layers, n_tokens)
    float max_ratio = 1.0f;
};

const Matrices& matrices_of(const Snapshot& snap, int n_experts, int n_tokens) {
    static Matrices m;
    if (m.generation == snap.generation) return m;
    m.generation = snap.generation;
    m.load = load_matrix(snap, n_experts, &m.max_ratio);
    m.top1 = top1_matrix(snap, n_tokens);
    return m;
}

// [SECTION] Map drawing

struct MapGeometry {
    ImVec2 p0;            // top-left of cell (0, 0)
    float cell_w = 1, cell_h = 1;
    int rows = 0, cols = 0;
};

// Cell under the mouse, or false.
bool cell_at(const MapGeometry& g, ImVec2 mouse, int* row, int* col) {
    if (mouse.x < g.p0.x || mouse.y < g.p0.y) return false;
    const int c = static_cast<int>((mouse.x - g.p0.x) / g.cell_w);
    const int r = static_cast<int>((mouse.y - g.p0.y) / g.cell_h);
    if (r < 0 || r >= g.rows || c < 0 || c >= g.cols) return false;
    *row = r;
    *col = c;
    return true;
}

// One map: the shader quad over an invisible button (so clicks land), or rectangles.
void draw_map(const char* id, gl::FloatTexture& tex, unsigned long long key, const std::vector<float>& values,
              const MapGeometry& g, gl::ColorMap map, float value_max) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 size(g.cell_w * static_cast<float>(g.cols), g.cell_h * static_cast<float>(g.rows));
    ImGui::SetCursorScreenPos(g.p0);
    ImGui::InvisibleButton(id, ImVec2(std::max(size.x, 1.0f), std::max(size.y, 1.0f)));
    const float gap = g.cell_w >= 4.0f && g.cell_h >= 4.0f ? 1.0f : 0.0f;
    if (gl::heatmap_shader_ok()) {
        if (!tex.current(key)) tex.update(key, values.data(), g.rows, g.cols);
        gl::HeatmapQuad q;
        q.p0 = g.p0;
        q.p1 = ImVec2(g.p0.x + size.x, g.p0.y + size.y);
        q.map = map;
        q.value_max = value_max;
        q.gap_px = gap;
        gl::draw_heatmap(dl, tex, q);
        return;
    }
    // Fallback: only the cells inside the clip rectangle.
    const ImVec2 clip0 = dl->GetClipRectMin(), clip1 = dl->GetClipRectMax();
    const int c_first = std::clamp(static_cast<int>((clip0.x - g.p0.x) / g.cell_w), 0, g.cols);
    const int c_last = std::clamp(static_cast<int>((clip1.x - g.p0.x) / g.cell_w) + 1, 0, g.cols);
    for (int r = 0; r < g.rows; ++r)
        for (int c = c_first; c < c_last; ++c) {
            const float v = values[static_cast<size_t>(r) * static_cast<size_t>(g.cols) + static_cast<size_t>(c)];
            const ImU32 col = map == gl::ColorMap::Experts ? (v < 0 ? kColorIdle : expert_color(static_cast<int>(v)))
                                                           : gl::viridis(v / value_max);
            const ImVec2 a(g.p0.x + g.cell_w * static_cast<float>(c), g.p0.y + g.cell_h * static_cast<float>(r));
            dl->AddRectFilled(a, ImVec2(a.x + g.cell_w - gap, a.y + g.cell_h - gap), col);
        }
}

// Wrapped before the (?) marker: at 1280x720 the overview is a 430-px tab and a title is longer.
void section_title(const char* text, const char* tip) {
    text_wrapped_before_teach(text);
    teach(tip);
}

}  // namespace

// [SECTION] Panel

void draw_overview(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    ViewState& view = ctx.view;
    const RoutingTrace* cur_tr = begin_trace_panel(snap, std::clamp(view.layer, 0, std::max(0, static_cast<int>(snap.forward.traces.size()) - 1)));
    if (cur_tr == nullptr) return;
    const int n_layers = static_cast<int>(snap.forward.traces.size());
    const int n_experts = cur_tr->n_experts;
    const int n_tokens = cur_tr->n_tokens;
    for (const RoutingTrace& tr : snap.forward.traces)
        if (tr.n_experts != n_experts || tr.n_tokens != n_tokens || tr.token_begin.size() != static_cast<size_t>(n_tokens) + 1) {
            empty_message("The layers of this run disagree in size, so the overview is not drawn.");
            return;
        }
    const float fs = ImGui::GetFontSize();
    ImFont* font = ImGui::GetFont();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 mouse = ImGui::GetMousePos();
    const float label_w = font->CalcTextSizeA(fs * 0.8f, FLT_MAX, 0.0f, "L00").x + 6.0f;
    const float avail_w = ImGui::GetContentRegionAvail().x - label_w - 4.0f;

    // Layers x experts.
    const Matrices& mats = matrices_of(snap, n_experts, n_tokens);
    const float max_ratio = mats.max_ratio;
    // The colours run from 0 to at least twice the even share, so a balanced model is an even
    // mid-colour field (under dense or perfectly balanced routing every cell is 1.0x: scaled to
    // the maximum it was one flat block of the brightest colour).
    const float scale_top = std::max(2.0f, max_ratio);
    const std::vector<float>& load = mats.load;
    {
        char head[192];
        std::snprintf(head, sizeof head,
                      "Load per expert, every MoE layer (%d layers x %d experts): colour 0 .. %.1fx the even share, "
                      "most loaded %.1fx",
                      n_layers, n_experts, scale_top, max_ratio);
        text_wrapped_before_teach(head);
    }
    teach("One row per MoE layer, one column per expert. Brightness = how many tokens the expert kept, over the "
          "even share (tokens x K / experts). A balanced layer is an even stripe; bright dots on a dark row are "
          "a few experts doing the work. Click a cell: that layer and expert are shown in every view.");
    const float avail_h = ImGui::GetContentRegionAvail().y;
    MapGeometry lg;
    lg.rows = n_layers;
    lg.cols = n_experts;
    lg.cell_w = std::max(avail_w / static_cast<float>(n_experts), 1.0f);
    lg.cell_h = std::clamp(avail_h * 0.42f / static_cast<float>(n_layers), 2.0f, fs * 1.2f);
    lg.p0 = ImVec2(ImGui::GetCursorScreenPos().x + label_w, ImGui::GetCursorScreenPos().y);
    static gl::FloatTexture load_tex, top1_tex;
    const unsigned long long key = snap.generation;
    draw_map("##overview_load", load_tex, key, load, lg, gl::ColorMap::Viridis, scale_top);
    const bool load_hovered = ImGui::IsItemHovered();
    const bool load_clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
    // Row labels where they fit, the current layer framed, the selected expert's column framed.
    const int every = std::max(1, static_cast<int>(std::ceil(fs * 0.85f / lg.cell_h)));
    for (int l = 0; l < n_layers; l += every) {
        char b[16];
        std::snprintf(b, sizeof b, "L%d", l);
        dl->AddText(font, std::min(fs * 0.8f, std::max(lg.cell_h * every, 8.0f)),
                    ImVec2(lg.p0.x - label_w, lg.p0.y + lg.cell_h * static_cast<float>(l)), IM_COL32(180, 180, 190, 255), b);
    }
    const float lw = lg.cell_w * static_cast<float>(n_experts);
    {
        const float y = lg.p0.y + lg.cell_h * static_cast<float>(view.layer);
        dl->AddRect(ImVec2(lg.p0.x - 1, y - 1), ImVec2(lg.p0.x + lw + 1, y + lg.cell_h + 1), IM_COL32(255, 255, 255, 255), 0.0f, 0, 1.5f);
    }
    if (view.selected_expert >= 0 && view.selected_expert < n_experts) {
        const float x = lg.p0.x + lg.cell_w * static_cast<float>(view.selected_expert);
        dl->AddRect(ImVec2(x - 1, lg.p0.y - 1), ImVec2(x + lg.cell_w + 1, lg.p0.y + lg.cell_h * n_layers + 1),
                    IM_COL32(255, 255, 255, 200), 0.0f, 0, 1.5f);
    }
    report_drawn("overview load %d x %d at %.1f %.1f cell %.2f x %.2f max %.3f top %.3f", n_layers, n_experts, lg.p0.x,
                 lg.p0.y, lg.cell_w, lg.cell_h, max_ratio, scale_top);
    int row = 0, col = 0;
    if (load_hovered && cell_at(lg, mouse, &row, &col)) {
        const RoutingTrace& tr = snap.forward.traces[static_cast<size_t>(row)];
        ImGui::BeginTooltip();
        ImGui::Text("MoE layer %d", row);
        ImGui::TextColored(expert_color_vec(col), "expert E%d", col);
        ImGui::Text("kept %d tokens, %.2fx the even share", tr.expert_load[static_cast<size_t>(col)],
                    load[static_cast<size_t>(row) * n_experts + col]);
        if (tr.expert_dropped[static_cast<size_t>(col)] > 0)
            ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kColorDropped), "%d dropped over capacity",
                               tr.expert_dropped[static_cast<size_t>(col)]);
        ImGui::TextDisabled("click: show this layer and expert everywhere");
        ImGui::EndTooltip();
        if (load_clicked) {
            view.layer = row;
            view.selected_expert = col;
        }
    }

    // Tokens x layers: each token's top-1 expert per layer.
    ImGui::SetCursorScreenPos(ImVec2(lg.p0.x - label_w, lg.p0.y + lg.cell_h * static_cast<float>(n_layers) + fs * 0.5f));
    section_title("Top-1 expert of every token (columns) in every layer (rows), in the experts' colours",
                  "Read a column down: the path one token takes through the model, one expert per layer. "
                  "Runs of one colour along a row are neighbouring tokens that go to the same expert. "
                  "Click a cell: that token, layer and expert are shown everywhere.");
    const float rest_h = ImGui::GetContentRegionAvail().y - fs * 0.5f;
    MapGeometry tg;
    tg.rows = n_layers;
    tg.cols = n_tokens;
    tg.cell_w = std::max(avail_w / static_cast<float>(n_tokens), 1.0f);
    tg.cell_h = std::clamp(rest_h / static_cast<float>(n_layers), 2.0f, fs * 1.2f);
    tg.p0 = ImVec2(ImGui::GetCursorScreenPos().x + label_w, ImGui::GetCursorScreenPos().y);
    const std::vector<float>& top = mats.top1;
    draw_map("##overview_top1", top1_tex, key, top, tg, gl::ColorMap::Experts, 1.0f);
    const bool top_hovered = ImGui::IsItemHovered();
    const bool top_clicked = ImGui::IsItemClicked(ImGuiMouseButton_Left);
    {
        // The current token's column and the current layer's row.
        const int cur = clamped_cursor(view, n_tokens);
        const float x = tg.p0.x + tg.cell_w * static_cast<float>(cur);
        dl->AddRect(ImVec2(x - 1, tg.p0.y - 1), ImVec2(x + tg.cell_w + 1, tg.p0.y + tg.cell_h * n_layers + 1),
                    IM_COL32(255, 255, 255, 255), 0.0f, 0, 1.5f);
        const float y = tg.p0.y + tg.cell_h * static_cast<float>(view.layer);
        dl->AddLine(ImVec2(tg.p0.x - label_w * 0.5f, y + tg.cell_h * 0.5f), ImVec2(tg.p0.x - 2.0f, y + tg.cell_h * 0.5f),
                    IM_COL32(255, 255, 255, 255), 2.0f);
    }
    report_drawn("overview top1 %d x %d at %.1f %.1f cell %.2f x %.2f", n_layers, n_tokens, tg.p0.x, tg.p0.y, tg.cell_w,
                 tg.cell_h);
    if (top_hovered && cell_at(tg, mouse, &row, &col)) {
        const RoutingTrace& tr = snap.forward.traces[static_cast<size_t>(row)];
        const int e = top1(tr, col);
        ImGui::BeginTooltip();
        ImGui::Text("token %d: %s, MoE layer %d", col, piece_label(display_pieces(ctx.session, snap), col).c_str(), row);
        if (e < 0) ImGui::TextDisabled("no expert took this token");
        else ImGui::TextColored(expert_color_vec(e), "first choice E%d (p %.3f)", e, tr.probs(col, e));
        ImGui::TextDisabled("click: show this token, layer and expert everywhere");
        ImGui::EndTooltip();
        if (top_clicked) {
            if (view.cursor != col) view.anim_t = 0.0f;
            view.cursor = col;
            view.playing = false;
            view.layer = row;
            if (e >= 0) view.selected_expert = e;
        }
    }
    ImGui::SetCursorScreenPos(ImVec2(tg.p0.x - label_w, tg.p0.y + tg.cell_h * static_cast<float>(n_layers) + 2.0f));
    ImGui::Dummy(ImVec2(1, 1));
}

}  // namespace moe::app
