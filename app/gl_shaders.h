// GLSL programs of the views (shaders/, GLSL 330 core) and the float textures they read.
//
// The heatmaps (token x expert, layers x experts, tokens x layers) are one float texture and one
// quad each, coloured per pixel by shaders/heatmap.frag, instead of one ImGui rectangle per cell:
// 1,000 tokens x 384 experts are 384,000 cells, far more than a software rasteriser draws at
// 60 Hz as rectangles. The quad goes into the panel's ImDrawList as a callback, so it sits at its
// place in ImGui's draw order (marks drawn after it land on top) and is clipped like everything
// else. The training lab's 2D mixture is drawn per pixel by shaders/mix2d.frag from the live
// weights (uniforms).
//
// The programs compile once, at start (init_shaders). Where one does not compile (old GL, a
// broken file) its view falls back to ImGui rectangles and the error goes to the status bar
// once; --screenshot works either way.
//
// [SECTION] Programs
// [SECTION] Float textures
// [SECTION] Heatmap quads
// [SECTION] 2D mixture
#pragma once

#include <imgui.h>

#include <string>
#include <vector>

namespace moe::app::gl {

// [SECTION] Programs

// Compiles every program under `dir` (empty: $MOELAB_SHADERS_DIR, else the source tree's
// shaders/). Needs the GL context current. Returns "" when all compiled, else one line for the
// status bar naming the file, the compiler's first error and what is drawn instead.
std::string init_shaders(const std::string& dir = {});
void shutdown_shaders();
bool heatmap_shader_ok();
bool mix2d_shader_ok();
// Where the shaders were read from (for messages and tests).
const std::string& shaders_dir();

// [SECTION] Float textures

// A (rows, cols) texture of single floats, updated only when its key changes.
class FloatTexture {
public:
    FloatTexture() = default;
    ~FloatTexture();
    FloatTexture(const FloatTexture&) = delete;
    FloatTexture& operator=(const FloatTexture&) = delete;

    // Uploads values (rows * cols, row-major) unless `key` equals the last upload's.
    void update(unsigned long long key, const float* values, int rows, int cols);
    bool current(unsigned long long key) const { return id_ != 0 && key_ == key; }
    unsigned id() const { return id_; }
    int rows() const { return rows_; }
    int cols() const { return cols_; }

private:
    unsigned id_ = 0;
    int rows_ = 0, cols_ = 0;
    unsigned long long key_ = ~0ull;
};

// [SECTION] Heatmap quads

enum class ColorMap : int {
    Viridis = 0,   // value / value_max on a viridis ramp (router probabilities, loads)
    Experts = 1,   // value = expert index: that expert's colour (the app's palette); < 0: idle grey
};

struct HeatmapQuad {
    ImVec2 p0, p1;           // screen rectangle of the whole texture (may extend past the clip)
    ColorMap map = ColorMap::Viridis;
    float value_max = 1.0f;  // Viridis: the value drawn brightest
    float gap_px = 1.0f;     // dark gap between cells, in pixels (0 when cells are tiny)
    ImVec4 gap_color{0.07f, 0.07f, 0.09f, 1.0f};
};

// Adds the quad to `dl` (needs heatmap_shader_ok()). The texture must stay alive until the frame
// is rendered (panels keep theirs in static storage).
void draw_heatmap(ImDrawList* dl, const FloatTexture& tex, const HeatmapQuad& q);

// The same viridis ramp on the CPU, for the fallback drawing and the colour legends.
ImU32 viridis(float t);

// [SECTION] 2D mixture

constexpr int kMix2dMaxExperts = 32;
constexpr int kMix2dMaxHidden = 8;

// The live weights of core/models/mix2d.h's trainer, flattened for the shader's uniforms.
struct Mix2dUniforms {
    int n_experts = 0, hidden = 0, k = 1;
    int gate_kind = 0;            // 0 softmax over all (Soft), 1 softmax then top-K (Switch, GShard raw),
                                  // 2 top-K then softmax over the chosen (Mixtral), 3 top-K renormalised,
                                  // 4 sigmoid + selection bias, top-K renormalised (DeepSeek-V3)
    float routed_scaling = 1.0f;
    std::vector<float> router;    // (n_experts, 4): w_x, w_y, bias, selection bias (kind 4 only)
    std::vector<float> unit;      // (n_experts, hidden, 4): w1_x, w1_y, b1, w2 of each tanh unit
    std::vector<float> b2;        // (n_experts) each expert's output bias
    int show = 0;                 // 0 the partition (top expert, shaded by its gate), 1 the prediction
};

// Adds a per-pixel picture of the plane [-1,1]^2 over (p0, p1) to `dl` (needs mix2d_shader_ok()).
// The uniforms are copied: the caller's may change right after.
void draw_mix2d(ImDrawList* dl, ImVec2 p0, ImVec2 p1, const Mix2dUniforms& u);

}  // namespace moe::app::gl
