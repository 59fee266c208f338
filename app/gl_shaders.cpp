// GLSL programs of the views and their float textures (app/gl_shaders.h).
//
// [SECTION] GL entry points
// [SECTION] Compiling
// [SECTION] Programs
// [SECTION] Float textures
// [SECTION] Draw callbacks
// [SECTION] Heatmap quads
// [SECTION] 2D mixture
#include "app/gl_shaders.h"

// [SECTION] GL entry points
// Mesa's and the NVIDIA driver's libGL (glvnd) export every GL 3.3 core function, so the
// prototypes are enough; ImGui's backend keeps its own loader for itself.
#define GL_GLEXT_PROTOTYPES 1
#include <GL/glcorearb.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "app/theme.h"

#ifndef MOE_SHADERS_DIR
#define MOE_SHADERS_DIR "shaders"
#endif

namespace moe::app::gl {

namespace {

// [SECTION] Compiling

struct Program {
    GLuint id = 0;
    std::string error;  // why it is not usable; empty when id != 0
};

std::string read_file(const std::string& path, std::string* error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *error = path + ": cannot be read (is the shaders/ folder beside the build?)";
        return {};
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The first line of a compiler log: enough for a status bar, the rest goes to stderr.
std::string first_line(const std::string& log) {
    const size_t nl = log.find('\n');
    return nl == std::string::npos ? log : log.substr(0, nl);
}

GLuint compile(GLenum kind, const std::string& path, std::string* error) {
    const std::string src = read_file(path, error);
    if (src.empty()) {
        if (error->empty()) *error = path + ": empty file";
        return 0;
    }
    const GLuint sh = glCreateShader(kind);
    const char* text = src.c_str();
    glShaderSource(sh, 1, &text, nullptr);
    glCompileShader(sh);
    GLint ok = 0;
    glGetShaderiv(sh, GL_COMPILE_STATUS, &ok);
    if (ok == GL_FALSE) {
        GLint len = 0;
        glGetShaderiv(sh, GL_INFO_LOG_LENGTH, &len);
        std::string log(static_cast<size_t>(std::max(len, 1)), '\0');
        glGetShaderInfoLog(sh, len, nullptr, log.data());
        std::fprintf(stderr, "moelab: %s does not compile:\n%s\n", path.c_str(), log.c_str());
        *error = path + ": " + first_line(log.c_str());
        glDeleteShader(sh);
        return 0;
    }
    return sh;
}

Program link(const std::string& dir, const char* vert, const char* frag) {
    Program p;
    const GLuint vs = compile(GL_VERTEX_SHADER, dir + "/" + vert, &p.error);
    if (vs == 0) return p;
    const GLuint fs = compile(GL_FRAGMENT_SHADER, dir + "/" + frag, &p.error);
    if (fs == 0) {
        glDeleteShader(vs);
        return p;
    }
    const GLuint prog = glCreateProgram();
    glAttachShader(prog, vs);
    glAttachShader(prog, fs);
    glLinkProgram(prog);
    glDeleteShader(vs);
    glDeleteShader(fs);
    GLint ok = 0;
    glGetProgramiv(prog, GL_LINK_STATUS, &ok);
    if (ok == GL_FALSE) {
        GLint len = 0;
        glGetProgramiv(prog, GL_INFO_LOG_LENGTH, &len);
        std::string log(static_cast<size_t>(std::max(len, 1)), '\0');
        glGetProgramInfoLog(prog, len, nullptr, log.data());
        std::fprintf(stderr, "moelab: %s + %s do not link:\n%s\n", vert, frag, log.c_str());
        p.error = dir + "/" + frag + ": link: " + first_line(log.c_str());
        glDeleteProgram(prog);
        return p;
    }
    p.id = prog;
    return p;
}

// [SECTION] Programs

struct State {
    std::string dir;
    Program heatmap, mix2d;
    GLuint vao = 0;       // core profile needs one bound; the quads take no attributes
    GLuint palette = 0;   // (1, kPaletteSize) RGBA8 expert colours
};

State& state() {
    static State s;
    return s;
}

constexpr int kPaletteSize = 512;  // more than the largest expert count a view shows (384)

GLint loc(GLuint prog, const char* name) { return glGetUniformLocation(prog, name); }

void set_quad_uniforms(GLuint prog, ImVec2 p0, ImVec2 p1) {
    const ImVec2 display = ImGui::GetIO().DisplaySize;
    glUniform4f(loc(prog, "u_rect"), p0.x, p0.y, p1.x, p1.y);
    glUniform2f(loc(prog, "u_display"), std::max(display.x, 1.0f), std::max(display.y, 1.0f));
}

}  // namespace

std::string init_shaders(const std::string& dir_in) {
    State& s = state();
    if (!dir_in.empty()) s.dir = dir_in;
    else if (const char* env = std::getenv("MOELAB_SHADERS_DIR"); env != nullptr && *env != '\0') s.dir = env;
    else s.dir = MOE_SHADERS_DIR;
    s.heatmap = link(s.dir, "quad.vert", "heatmap.frag");
    s.mix2d = link(s.dir, "quad.vert", "mix2d.frag");
    glGenVertexArrays(1, &s.vao);

    std::vector<unsigned char> rgba(static_cast<size_t>(kPaletteSize) * 4);
    for (int e = 0; e < kPaletteSize; ++e) {
        const ImU32 c = expert_color(e);
        rgba[static_cast<size_t>(e) * 4 + 0] = static_cast<unsigned char>((c >> IM_COL32_R_SHIFT) & 0xFF);
        rgba[static_cast<size_t>(e) * 4 + 1] = static_cast<unsigned char>((c >> IM_COL32_G_SHIFT) & 0xFF);
        rgba[static_cast<size_t>(e) * 4 + 2] = static_cast<unsigned char>((c >> IM_COL32_B_SHIFT) & 0xFF);
        rgba[static_cast<size_t>(e) * 4 + 3] = 255;
    }
    glGenTextures(1, &s.palette);
    glBindTexture(GL_TEXTURE_2D, s.palette);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, kPaletteSize, 1, 0, GL_RGBA, GL_UNSIGNED_BYTE, rgba.data());
    glBindTexture(GL_TEXTURE_2D, 0);

    std::string msg;
    if (!s.heatmap.error.empty())
        msg = "shader " + s.heatmap.error + " -- heatmaps drawn as rectangles (slower)";
    if (!s.mix2d.error.empty())
        msg += (msg.empty() ? "shader " : "; shader ") + s.mix2d.error + " -- the 2D mixture drawn on a coarse grid";
    return msg;
}

void shutdown_shaders() {
    State& s = state();
    if (s.heatmap.id) glDeleteProgram(s.heatmap.id);
    if (s.mix2d.id) glDeleteProgram(s.mix2d.id);
    if (s.vao) glDeleteVertexArrays(1, &s.vao);
    if (s.palette) glDeleteTextures(1, &s.palette);
    s = State{};
}

bool heatmap_shader_ok() { return state().heatmap.id != 0; }
bool mix2d_shader_ok() { return state().mix2d.id != 0; }
const std::string& shaders_dir() { return state().dir; }

// [SECTION] Float textures

FloatTexture::~FloatTexture() {
    // Static panel textures outlive the context at exit; the driver frees them with it.
    id_ = 0;
}

void FloatTexture::update(unsigned long long key, const float* values, int rows, int cols) {
    if (current(key) || rows <= 0 || cols <= 0) return;
    if (id_ == 0) glGenTextures(1, &id_);
    glBindTexture(GL_TEXTURE_2D, id_);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 4);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_R32F, cols, rows, 0, GL_RED, GL_FLOAT, values);
    glBindTexture(GL_TEXTURE_2D, 0);
    rows_ = rows;
    cols_ = cols;
    key_ = key;
}

// [SECTION] Draw callbacks
// ImDrawList keeps only a pointer to the callback's data, read at render time, so the data
// lives in a ring that no frame can wrap: a frame draws at most a handful of shader quads.

namespace {

struct HeatmapCall {
    GLuint texture = 0;
    HeatmapQuad quad;
};

struct Mix2dCall {
    ImVec2 p0, p1;
    Mix2dUniforms u;
};

template <typename T>
T& next_slot() {
    static std::array<T, 64> ring;
    static size_t at = 0;
    T& slot = ring[at];
    at = (at + 1) % ring.size();
    return slot;
}

// The backend set the scissor for the previous command, not for ours.
void scissor_to(const ImDrawCmd* cmd) {
    const ImGuiIO& io = ImGui::GetIO();
    const float sx = io.DisplayFramebufferScale.x, sy = io.DisplayFramebufferScale.y;
    const float fb_h = io.DisplaySize.y * sy;
    const ImVec4 c = cmd->ClipRect;
    glScissor(static_cast<GLint>(c.x * sx), static_cast<GLint>(fb_h - c.w * sy),
              static_cast<GLsizei>(std::max(0.0f, (c.z - c.x) * sx)), static_cast<GLsizei>(std::max(0.0f, (c.w - c.y) * sy)));
}

void bind_palette(GLuint prog, int unit) {
    glActiveTexture(static_cast<GLenum>(GL_TEXTURE0 + unit));
    glBindTexture(GL_TEXTURE_2D, state().palette);
    glUniform1i(loc(prog, "u_palette"), unit);
}

void heatmap_callback(const ImDrawList*, const ImDrawCmd* cmd) {
    const HeatmapCall& call = *static_cast<const HeatmapCall*>(cmd->UserCallbackData);
    const GLuint prog = state().heatmap.id;
    const HeatmapQuad& q = call.quad;
    scissor_to(cmd);
    glUseProgram(prog);
    glBindVertexArray(state().vao);
    set_quad_uniforms(prog, q.p0, q.p1);
    glActiveTexture(GL_TEXTURE0);
    glBindTexture(GL_TEXTURE_2D, call.texture);
    glUniform1i(loc(prog, "u_values"), 0);
    bind_palette(prog, 1);
    glUniform1i(loc(prog, "u_mode"), static_cast<int>(q.map));
    glUniform1f(loc(prog, "u_value_max"), q.value_max);
    GLint size[2] = {1, 1};
    glActiveTexture(GL_TEXTURE0);
    glGetTexLevelParameteriv(GL_TEXTURE_2D, 0, GL_TEXTURE_WIDTH, &size[0]);
    glGetTexLevelParameteriv(GL_TEXTURE_2D, 0, GL_TEXTURE_HEIGHT, &size[1]);
    glUniform2f(loc(prog, "u_cell_px"), (q.p1.x - q.p0.x) / static_cast<float>(std::max(size[0], 1)),
                (q.p1.y - q.p0.y) / static_cast<float>(std::max(size[1], 1)));
    glUniform1f(loc(prog, "u_gap_px"), q.gap_px);
    glUniform4f(loc(prog, "u_gap_color"), q.gap_color.x, q.gap_color.y, q.gap_color.z, q.gap_color.w);
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    glActiveTexture(GL_TEXTURE0);  // ImGui's backend binds its textures to unit 0 without asking
}

void mix2d_callback(const ImDrawList*, const ImDrawCmd* cmd) {
    const Mix2dCall& call = *static_cast<const Mix2dCall*>(cmd->UserCallbackData);
    const GLuint prog = state().mix2d.id;
    const Mix2dUniforms& u = call.u;
    scissor_to(cmd);
    glUseProgram(prog);
    glBindVertexArray(state().vao);
    set_quad_uniforms(prog, call.p0, call.p1);
    bind_palette(prog, 1);
    glUniform1i(loc(prog, "u_n_experts"), u.n_experts);
    glUniform1i(loc(prog, "u_hidden"), u.hidden);
    glUniform1i(loc(prog, "u_k"), u.k);
    glUniform1i(loc(prog, "u_gate_kind"), u.gate_kind);
    glUniform1f(loc(prog, "u_scaling"), u.routed_scaling);
    glUniform1i(loc(prog, "u_show"), u.show);
    glUniform2f(loc(prog, "u_px"), call.p1.x - call.p0.x, call.p1.y - call.p0.y);
    glUniform4fv(loc(prog, "u_router"), u.n_experts, u.router.data());
    // The shader indexes units as e * MAX_H + j: spread the (n_experts, hidden) rows out.
    std::vector<float> units(static_cast<size_t>(kMix2dMaxExperts) * kMix2dMaxHidden * 4, 0.0f);
    for (int e = 0; e < u.n_experts; ++e)
        for (int j = 0; j < u.hidden; ++j)
            for (int c = 0; c < 4; ++c)
                units[(static_cast<size_t>(e) * kMix2dMaxHidden + j) * 4 + c] =
                    u.unit[(static_cast<size_t>(e) * u.hidden + j) * 4 + c];
    glUniform4fv(loc(prog, "u_unit"), kMix2dMaxExperts * kMix2dMaxHidden, units.data());
    glUniform1fv(loc(prog, "u_b2"), u.n_experts, u.b2.data());
    glDrawArrays(GL_TRIANGLE_STRIP, 0, 4);
    glActiveTexture(GL_TEXTURE0);
}

}  // namespace

// [SECTION] Heatmap quads

void draw_heatmap(ImDrawList* dl, const FloatTexture& tex, const HeatmapQuad& q) {
    if (!heatmap_shader_ok() || tex.id() == 0) return;
    HeatmapCall& call = next_slot<HeatmapCall>();
    call.texture = tex.id();
    call.quad = q;
    dl->AddCallback(heatmap_callback, &call);
    dl->AddCallback(ImDrawCallback_ResetRenderState, nullptr);
}

ImU32 viridis(float t) {
    static constexpr float kStops[5][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = std::clamp(t, 0.0f, 1.0f) * 4.0f;
    const int i = std::min(static_cast<int>(t), 3);
    const float f = t - static_cast<float>(i);
    const float r = kStops[i][0] + (kStops[i + 1][0] - kStops[i][0]) * f;
    const float g = kStops[i][1] + (kStops[i + 1][1] - kStops[i][1]) * f;
    const float b = kStops[i][2] + (kStops[i + 1][2] - kStops[i][2]) * f;
    return IM_COL32(static_cast<int>(r + 0.5f), static_cast<int>(g + 0.5f), static_cast<int>(b + 0.5f), 255);
}

// [SECTION] 2D mixture

void draw_mix2d(ImDrawList* dl, ImVec2 p0, ImVec2 p1, const Mix2dUniforms& u) {
    if (!mix2d_shader_ok() || u.n_experts < 1 || u.n_experts > kMix2dMaxExperts || u.hidden < 0 ||
        u.hidden > kMix2dMaxHidden)
        return;
    Mix2dCall& call = next_slot<Mix2dCall>();
    call.p0 = p0;
    call.p1 = p1;
    call.u = u;
    dl->AddCallback(mix2d_callback, &call);
    dl->AddCallback(ImDrawCallback_ResetRenderState, nullptr);
}

}  // namespace moe::app::gl
