// moelab: the desktop app. GLFW window, OpenGL 3.3 core, Dear ImGui 1.86 (Debian's libimgui-dev).
//
// [SECTION] Arguments      command line, incl. --screenshot (headless pictures for tests and docs)
// [SECTION] Layout         a fixed grid computed from the window size every frame (1.86 has no docking)
// [SECTION] App state      window, session, view state, what was last sent to the engine
// [SECTION] Fonts          DPI x zoom x presenter, rebuilt only when the scale changes
// [SECTION] Engine sync    push knob/text changes (never blocking), pick up new snapshots, playback
// [SECTION] Menus          View menu from the panel table, presenter, zoom, status bar
// [SECTION] Keyboard       shortcuts; silent while the user types in a text box
// [SECTION] Frame          one frame: sync, menus, panels, render
// [SECTION] main
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "app/panels.h"
#include "app/screenshot.h"
#include "app/settings.h"
#include "app/theme.h"
#include "app/view_state.h"
#include "core/error.h"
#include "core/session.h"

namespace moe::app {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A text that shows routing at work from the first second: prose, another language, code, digits.
constexpr const char* kDefaultText =
    "The cat sat on the mat. Le chat est sur le tapis. for (int i = 0; i < 10; ++i) x += i; 3.14159";

// [SECTION] Arguments
struct Options {
    std::string screenshot;              // --screenshot FILE: render, save, exit
    int frames = 3;                      // --frames N
    bool timing = false;                 // --timing: print knob->view latency and frame time
    std::optional<std::string> text;     // --text T
    std::optional<int> k;                // --k K
    std::optional<Scheme> scheme;        // --scheme NAME
    std::optional<float> capacity;       // --capacity C
    std::optional<DropPolicy> drop;      // --drop POLICY
    std::optional<int> layer;            // --layer L
    std::optional<int> token;            // --token I
    bool presenter = false;              // --presenter
    int width = 1280, height = 720;      // --size WxH
    std::string model;                   // --model PATH (default: the built-in model)
    std::string settings;                // --settings FILE instead of ~/.config/moelab/settings.json
    std::optional<Device> device;        // --device cpu|cuda; default: CUDA when a GPU is usable
};

constexpr const char* kUsage =
    "usage: moelab [--model PATH] [--settings FILE] [--text T] [--k K] [--scheme NAME]\n"
    "              [--capacity C] [--drop POLICY] [--layer L] [--token I] [--presenter] [--size WxH]\n"
    "              [--device cpu|cuda]   (default: cuda when a GPU is usable, else cpu)\n"
    "       moelab --screenshot FILE [--frames N] [--timing] [same options]\n"
    "       (screenshots use default settings unless --settings is given, and never save them)\n"
    "schemes: soft topk_mixtral topk_gshard noisy_topk switch gshard_top2 expert_choice hash\n"
    "         base sinkhorn sigmoid_bias (see moelab-cli); drop policies: dropless position score\n";

int parse_int(const std::string& opt, const std::string& v) {
    try {
        size_t used = 0;
        const long x = std::stol(v, &used);
        if (used == v.size() && x >= -1000000000L && x <= 1000000000L) return static_cast<int>(x);
    } catch (const std::exception&) {
    }
    throw Error("moelab", opt, "'" + v + "' is not an integer", "e.g. " + opt + " 2");
}

float parse_float(const std::string& opt, const std::string& v) {
    try {
        size_t used = 0;
        const float x = std::stof(v, &used);
        if (used == v.size() && std::isfinite(x)) return x;
    } catch (const std::exception&) {
    }
    throw Error("moelab", opt, "'" + v + "' is not a number", "e.g. " + opt + " 1.25");
}

Options parse_args(int argc, char** argv) {
    Options o;
    std::vector<std::string> args(argv + 1, argv + argc);
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= args.size()) throw Error("moelab", a, "needs a value", "see moelab --help");
            return args[++i];
        };
        if (a == "--screenshot") {
            o.screenshot = value();
            if (o.screenshot.empty()) throw Error("moelab", a, "is empty", "give a PNG file name");
        } else if (a == "--frames") {
            o.frames = parse_int(a, value());
            if (o.frames < 1 || o.frames > 10000)
                throw Error("moelab", a, std::to_string(o.frames), "expected 1..10000");
        } else if (a == "--timing") {
            o.timing = true;
        } else if (a == "--text") {
            o.text = value();
        } else if (a == "--k") {
            o.k = parse_int(a, value());
            if (*o.k < 1) throw Error("moelab", a, std::to_string(*o.k), "expected K >= 1");
        } else if (a == "--scheme") {
            const std::string v = value();
            o.scheme = scheme_from_name(v);
            if (!o.scheme) throw Error("moelab", a, "unknown scheme '" + v + "'", "one of the schemes below\n" + std::string(kUsage));
        } else if (a == "--capacity") {
            o.capacity = parse_float(a, value());
        } else if (a == "--drop") {
            const std::string v = value();
            o.drop = drop_policy_from_name(v);
            if (!o.drop) throw Error("moelab", a, "unknown drop policy '" + v + "'", "dropless, position or score");
        } else if (a == "--layer") {
            o.layer = parse_int(a, value());
        } else if (a == "--token") {
            o.token = parse_int(a, value());
        } else if (a == "--presenter") {
            o.presenter = true;
        } else if (a == "--size") {
            const std::string v = value();
            int w = 0, h = 0;
            char tail = 0;
            if (std::sscanf(v.c_str(), "%dx%d%c", &w, &h, &tail) != 2 || w < 320 || h < 240 || w > 8192 || h > 8192)
                throw Error("moelab", a, "'" + v + "'", "expected WxH, e.g. 1280x720 (320x240 .. 8192x8192)");
            o.width = w;
            o.height = h;
        } else if (a == "--model") {
            o.model = value();
        } else if (a == "--device") {
            o.device = parse_device(value(), "moelab", a);
        } else if (a == "--settings") {
            o.settings = value();
            if (o.settings.empty()) throw Error("moelab", a, "is empty", "give a settings JSON file");
        } else {
            throw Error("moelab", a, "is not an option", "see moelab --help");
        }
    }
    if (o.screenshot.empty() && o.timing)
        throw Error("moelab", "--timing", "works with --screenshot only", "add --screenshot FILE");
    return o;
}

// [SECTION] Layout
struct Rect {
    float x = 0, y = 0, w = 0, h = 0;
};

// Splits r along one axis among the visible items, by weight; hidden items get nothing, so the
// visible ones close the gap. Writes rects[index] for each visible item.
struct Item {
    int panel;      // index into the panel table, -1 for none
    float weight;
};

void split(const Rect& r, bool horizontal, const std::vector<Item>& items, const Panel* table,
           std::vector<Rect>& rects) {
    float total = 0;
    for (const Item& it : items)
        if (it.panel >= 0 && table[it.panel].visible) total += it.weight;
    if (total <= 0) return;
    float at = horizontal ? r.x : r.y;
    for (const Item& it : items) {
        if (it.panel < 0 || !table[it.panel].visible) continue;
        const float len = std::floor((horizontal ? r.w : r.h) * it.weight / total);
        Rect& out = rects[static_cast<size_t>(it.panel)];
        out = horizontal ? Rect{at, r.y, len, r.h} : Rect{r.x, at, r.w, len};
        at += len;
    }
    // Give rounding leftovers to the last visible item so the grid meets the window edge.
    for (auto it = items.rbegin(); it != items.rend(); ++it) {
        if (it->panel < 0 || !table[it->panel].visible) continue;
        Rect& out = rects[static_cast<size_t>(it->panel)];
        if (horizontal) out.w = r.x + r.w - out.x;
        else out.h = r.y + r.h - out.y;
        break;
    }
}

bool any_visible(const Panel* table, std::initializer_list<int> ids) {
    for (int id : ids)
        if (id >= 0 && table[id].visible) return true;
    return false;
}

int find_panel(const Panel* table, int n, const char* label) {
    for (int i = 0; i < n; ++i)
        if (std::strcmp(table[i].label, label) == 0) return i;
    MOE_ASSERT(false, "the layout names a panel that is not in the table (panels.cpp)");
    return -1;
}

// The grid: token strip across the top, router big in the middle, load bars and prediction at
// the side, heatmap and counters below, controls and text in a collapsible left column.
std::vector<Rect> compute_layout(const Rect& area, float scale, bool show_controls, const Panel* table, int n) {
    const int controls = find_panel(table, n, "Controls");
    const int text = find_panel(table, n, "Text");
    const int tokens = find_panel(table, n, "Tokens");
    const int router = find_panel(table, n, "Router");
    const int load = find_panel(table, n, "Expert load");
    const int prediction = find_panel(table, n, "Next byte");
    const int heatmap = find_panel(table, n, "Gate heatmap");
    const int counters = find_panel(table, n, "Parameters and FLOPs");
    std::vector<Rect> rects(static_cast<size_t>(n));

    Rect main = area;
    if (show_controls && any_visible(table, {controls, text})) {
        const float left_w = std::floor(std::clamp(area.w * 0.24f, 250.0f * scale, 440.0f * scale));
        split(Rect{area.x, area.y, left_w, area.h}, false, {{controls, 0.68f}, {text, 0.32f}}, table, rects);
        main = Rect{area.x + left_w, area.y, area.w - left_w, area.h};
    }
    const bool text_on_top = !show_controls;
    const float top_h = std::floor(std::clamp(main.h * 0.21f, 120.0f * scale, 260.0f * scale));
    if (any_visible(table, {tokens, text_on_top ? text : -1})) {
        split(Rect{main.x, main.y, main.w, top_h}, true,
              {{text_on_top ? text : -1, 0.3f}, {tokens, 0.7f}}, table, rects);
        main.y += top_h;
        main.h -= top_h;
    }
    const float side_w = std::floor(main.w * 0.36f);
    const bool side = any_visible(table, {load, prediction});
    const bool bottom = any_visible(table, {heatmap, counters});
    const float mid_h = bottom ? std::floor(main.h * 0.58f) : main.h;
    if (router >= 0 && table[router].visible)
        rects[static_cast<size_t>(router)] = Rect{main.x, main.y, side ? main.w - side_w : main.w, mid_h};
    if (side) {
        const bool router_on = table[router].visible;
        const Rect col = router_on ? Rect{main.x + main.w - side_w, main.y, side_w, mid_h}
                                   : Rect{main.x, main.y, main.w, mid_h};
        split(col, !router_on, {{load, 0.55f}, {prediction, 0.45f}}, table, rects);
    }
    if (bottom)
        split(Rect{main.x, main.y + mid_h, main.w, main.h - mid_h}, true, {{heatmap, 0.64f}, {counters, 0.36f}},
              table, rects);
    return rects;
}

// [SECTION] App state
struct App {
    GLFWwindow* window = nullptr;
    Session* session = nullptr;
    ViewState view;
    Panel* table = nullptr;
    int n_panels = 0;
    bool screenshot_mode = false;
    std::string settings_path;      // empty: nothing persists (screenshots, no HOME)
    float content_scale = 1.0f;     // glfwGetWindowContentScale

    // What the engine was last asked for, to send only changes.
    SessionKnobs sent_knobs;
    std::string sent_text;
    bool sent_any = false;
    Clock::time_point request_time;
    bool request_open = false;      // a request whose snapshot is not on screen yet
    uint64_t shown_generation = 0;
    int last_cursor = -1;
    std::vector<Rect> layout;       // per panel, this frame

    // Fonts in use.
    float font_scale = 0.0f;

    // Fullscreen toggle remembers the windowed placement.
    int windowed_x = 100, windowed_y = 100, windowed_w = 1280, windowed_h = 720;
    bool want_screenshot = false;   // Ctrl+S: saved after this frame renders
    bool controls_before_presenter = true;
};

bool same_router(const RouterConfig& a, const RouterConfig& b) {
    return a.scheme == b.scheme && a.n_experts == b.n_experts && a.k == b.k &&
           a.capacity_factor == b.capacity_factor && a.drop_policy == b.drop_policy &&
           a.renormalize == b.renormalize && a.add_noise == b.add_noise && a.noise_scale == b.noise_scale &&
           a.jitter_eps == b.jitter_eps && a.n_groups == b.n_groups && a.topk_groups == b.topk_groups &&
           a.routed_scaling == b.routed_scaling && a.sinkhorn_iters == b.sinkhorn_iters &&
           a.bias_update_rate == b.bias_update_rate && a.seed == b.seed;
}

bool same_knobs(const SessionKnobs& a, const SessionKnobs& b) {
    return same_router(a.router, b.router) && a.shared_experts == b.shared_experts && a.device == b.device;
}

// [SECTION] Fonts
float wanted_font_scale(const App& app) {
    return app.view.ui_scale * (app.view.presenter ? 1.6f : 1.0f);
}

// Rebuilding the atlas is slow; do it only when DPI, zoom or presenter mode changed, and never
// between NewFrame and Render.
void update_fonts(App& app) {
    app.view.ui_scale = app.content_scale * app.view.user_zoom;
    const float s = wanted_font_scale(app);
    if (s == app.font_scale) return;
    app.font_scale = s;
    ImGui::GetIO().Fonts->Clear();
    load_fonts(s);
    ImGui_ImplOpenGL3_DestroyFontsTexture();
    ImGui_ImplOpenGL3_CreateFontsTexture();
    apply_style(app.view.presenter, s);
}

// [SECTION] Engine sync
void push_requests(App& app) {
    ViewState& v = app.view;
    v.knobs.router.n_experts = app.session->model().info().moe.n_experts;  // a model property, not a knob
    if (!app.sent_any || !same_knobs(v.knobs, app.sent_knobs)) {
        app.session->set_knobs(v.knobs);
        app.sent_knobs = v.knobs;
        app.request_time = Clock::now();
        app.request_open = true;
    }
    if (!app.sent_any || v.text_input != app.sent_text) {
        app.session->set_text(v.text_input);
        app.sent_text = v.text_input;
        app.request_time = Clock::now();
        app.request_open = true;
    }
    app.sent_any = true;
}

// Keeps cursor and layer inside what the snapshot has; advances playback and the animation clock.
void advance_view(App& app, const Snapshot& snap, double dt) {
    ViewState& v = app.view;
    const int n_tokens = static_cast<int>(snap.tokens.size());
    const int n_layers = static_cast<int>(snap.forward.traces.size());
    if (v.playing && n_tokens > 0) {
        v.play_accum += dt;
        const double step = 1.0 / std::max(0.1f, v.play_speed);
        while (v.play_accum >= step) {
            v.play_accum -= step;
            if (v.cursor + 1 >= n_tokens) {
                v.playing = false;
                v.play_accum = 0;
                break;
            }
            ++v.cursor;
        }
    }
    v.cursor = std::clamp(v.cursor, 0, std::max(0, n_tokens - 1));
    v.layer = std::clamp(v.layer, 0, std::max(0, n_layers - 1));
    if (v.cursor != app.last_cursor || snap.generation != app.shown_generation) v.anim_t = 0.0f;
    app.last_cursor = v.cursor;
    v.anim_t = std::min(1.0f, v.anim_t + static_cast<float>(dt) * 2.5f);  // arcs grow in 0.4 s
    v.time_s += dt;
}

// [SECTION] Menus
void set_presenter(App& app, bool on) {
    ViewState& v = app.view;
    if (on == v.presenter) return;
    if (on) {
        app.controls_before_presenter = v.show_controls;
        v.show_controls = false;
    } else {
        v.show_controls = app.controls_before_presenter;
    }
    v.presenter = on;
}

void set_fullscreen(App& app, bool on) {
    if (on == app.view.fullscreen) return;
    GLFWmonitor* monitor = glfwGetPrimaryMonitor();
    const GLFWvidmode* mode = monitor ? glfwGetVideoMode(monitor) : nullptr;
    if (on && mode) {
        glfwGetWindowPos(app.window, &app.windowed_x, &app.windowed_y);
        glfwGetWindowSize(app.window, &app.windowed_w, &app.windowed_h);
        glfwSetWindowMonitor(app.window, monitor, 0, 0, mode->width, mode->height, mode->refreshRate);
        app.view.fullscreen = true;
    } else if (!on) {
        glfwSetWindowMonitor(app.window, nullptr, app.windowed_x, app.windowed_y, app.windowed_w,
                             app.windowed_h, 0);
        app.view.fullscreen = false;
    } else {
        app.view.status = "fullscreen: no monitor found";
    }
}

void zoom(App& app, float factor) {
    app.view.user_zoom = std::clamp(app.view.user_zoom * factor, kMinZoom, kMaxZoom);
}

float draw_menu_bar(App& app) {
    ViewState& v = app.view;
    float height = 0;
    if (ImGui::BeginMainMenuBar()) {
        if (ImGui::BeginMenu("View")) {
            for (int i = 0; i < app.n_panels; ++i) ImGui::MenuItem(app.table[i].label, nullptr, &app.table[i].visible);
            ImGui::Separator();
            ImGui::MenuItem("Controls column", nullptr, &v.show_controls);
            bool presenter = v.presenter;
            if (ImGui::MenuItem("Presenter mode", "P / F5", &presenter)) set_presenter(app, presenter);
            teach("Large fonts and high contrast for a lecture hall; the controls column folds away.");
            bool fullscreen = v.fullscreen;
            if (ImGui::MenuItem("Fullscreen", "F11", &fullscreen)) set_fullscreen(app, fullscreen);
            if (ImGui::MenuItem("Zoom in", "Ctrl+=")) zoom(app, 1.1f);
            if (ImGui::MenuItem("Zoom out", "Ctrl+-")) zoom(app, 1.0f / 1.1f);
            if (ImGui::MenuItem("Reset zoom", "Ctrl+0")) v.user_zoom = 1.0f;
            ImGui::Separator();
            if (ImGui::MenuItem("Save screenshot", "Ctrl+S")) app.want_screenshot = true;
            ImGui::EndMenu();
        }
        if (ImGui::BeginMenu("Help")) {
            ImGui::TextUnformatted(
                "Space play/pause   Left/Right step   Home/End jump\n"
                "1-9 set K   Up/Down layer   S next scheme\n"
                "P or F5 presenter   F11 fullscreen   Ctrl+=/- zoom   Ctrl+S screenshot");
            ImGui::EndMenu();
        }
        height = ImGui::GetWindowSize().y;
        ImGui::EndMainMenuBar();
    }
    return height;
}

void draw_status_bar(App& app, const Snapshot& snap, const Rect& r) {
    ImGui::SetNextWindowPos(ImVec2(r.x, r.y), ImGuiCond_Always);
    ImGui::SetNextWindowSize(ImVec2(r.w, r.h), ImGuiCond_Always);
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                   ImGuiWindowFlags_NoSavedSettings | ImGuiWindowFlags_NoFocusOnAppearing |
                                   ImGuiWindowFlags_NoBringToFrontOnFocus;
    if (ImGui::Begin("##status", nullptr, flags)) {
        const ImVec4 red(1.0f, 0.45f, 0.35f, 1.0f);
        if (!snap.error.empty()) {
            ImGui::TextColored(red, "%s", snap.error.c_str());
            ImGui::SameLine();
        }
        if (!app.view.status.empty()) {
            ImGui::TextColored(red, "%s", app.view.status.c_str());
            ImGui::SameLine();
        }
        const ImVec4 amber(1.0f, 0.8f, 0.3f, 1.0f);
        for (const std::string* note : {&app.session->model_note(), &snap.device_note}) {
            if (note->empty()) continue;
            ImGui::TextColored(amber, "%s", note->c_str());
            ImGui::SameLine();
        }
        ImGui::TextDisabled("engine %.1f ms on %s | knob->view %.0f ms | frame %.1f ms%s", snap.compute_ms,
                            device_name(snap.device), app.view.knob_to_view_ms, app.view.frame_ms,
                            app.session->busy() ? " | computing..." : "");
    }
    ImGui::End();
}

// [SECTION] Keyboard
void handle_keys(App& app, const Snapshot& snap) {
    ImGuiIO& io = ImGui::GetIO();
    ViewState& v = app.view;
    const bool ctrl = io.KeyCtrl;
    if (ctrl) {
        if (ImGui::IsKeyPressed(GLFW_KEY_S, false)) app.want_screenshot = true;
        if (ImGui::IsKeyPressed(GLFW_KEY_EQUAL) || ImGui::IsKeyPressed(GLFW_KEY_KP_ADD)) zoom(app, 1.1f);
        if (ImGui::IsKeyPressed(GLFW_KEY_MINUS) || ImGui::IsKeyPressed(GLFW_KEY_KP_SUBTRACT)) zoom(app, 1.0f / 1.1f);
        if (ImGui::IsKeyPressed(GLFW_KEY_0, false)) v.user_zoom = 1.0f;
        return;
    }
    if (ImGui::IsKeyPressed(GLFW_KEY_F11, false)) set_fullscreen(app, !v.fullscreen);
    if (ImGui::IsKeyPressed(GLFW_KEY_F5, false)) set_presenter(app, !v.presenter);
    if (io.WantTextInput) return;  // typing in the text box: letters and arrows are the text's
    const int n_tokens = static_cast<int>(snap.tokens.size());
    if (ImGui::IsKeyPressed(GLFW_KEY_SPACE, false)) {
        if (!v.playing && v.cursor + 1 >= n_tokens) v.cursor = 0;
        v.playing = !v.playing;
    }
    if (ImGui::IsKeyPressed(GLFW_KEY_RIGHT)) {
        v.playing = false;
        v.cursor = std::min(v.cursor + 1, std::max(0, n_tokens - 1));
    }
    if (ImGui::IsKeyPressed(GLFW_KEY_LEFT)) {
        v.playing = false;
        v.cursor = std::max(v.cursor - 1, 0);
    }
    if (ImGui::IsKeyPressed(GLFW_KEY_HOME, false)) v.cursor = 0;
    if (ImGui::IsKeyPressed(GLFW_KEY_END, false)) v.cursor = std::max(0, n_tokens - 1);
    const int n_experts = v.knobs.router.n_experts;
    for (int d = 1; d <= 9; ++d)
        if (ImGui::IsKeyPressed(GLFW_KEY_0 + d, false) || ImGui::IsKeyPressed(GLFW_KEY_KP_0 + d, false)) {
            if (d <= n_experts) v.knobs.router.k = d;
            else v.status = "K = " + std::to_string(d) + " is more than the " + std::to_string(n_experts) + " experts";
        }
    const int n_layers = static_cast<int>(snap.forward.traces.size());
    if (ImGui::IsKeyPressed(GLFW_KEY_UP)) v.layer = std::min(v.layer + 1, std::max(0, n_layers - 1));
    if (ImGui::IsKeyPressed(GLFW_KEY_DOWN)) v.layer = std::max(v.layer - 1, 0);
    if (ImGui::IsKeyPressed(GLFW_KEY_S, false))
        v.knobs.router.scheme = static_cast<Scheme>((static_cast<int>(v.knobs.router.scheme) + 1) % kNumSchemes);
    if (ImGui::IsKeyPressed(GLFW_KEY_P, false)) set_presenter(app, !v.presenter);
}

std::string timestamped_png_name() {
    char buf[64];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(buf, sizeof(buf), "moelab-%Y%m%d-%H%M%S.png", &tm);
    return buf;
}

// [SECTION] Frame
// Builds and renders one frame (not swapped). Returns the snapshot it showed.
std::shared_ptr<const Snapshot> frame(App& app, double dt) {
    const Clock::time_point t0 = Clock::now();
    update_fonts(app);
    push_requests(app);
    std::shared_ptr<const Snapshot> snap = app.session->latest();
    advance_view(app, *snap, dt);
    const bool new_snapshot = snap->generation != app.shown_generation;

    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    // Xvfb parks its pointer mid-screen: without this every screenshot would carry a hover tooltip.
    if (app.screenshot_mode) ImGui::GetIO().MousePos = ImVec2(-FLT_MAX, -FLT_MAX);
    ImGui::NewFrame();
    if (!app.screenshot_mode) handle_keys(app, *snap);

    const float menu_h = draw_menu_bar(app);
    const ImVec2 display = ImGui::GetIO().DisplaySize;
    const float status_h = std::floor(ImGui::GetFrameHeightWithSpacing() + ImGui::GetStyle().WindowPadding.y * 2);
    const Rect area{0, menu_h, display.x, std::max(0.0f, display.y - menu_h - status_h)};
    // Minimum sizes follow the fonts, so presenter mode gets room for its larger text.
    app.layout = compute_layout(area, wanted_font_scale(app), app.view.show_controls, app.table, app.n_panels);

    PanelContext ctx{*app.session, *snap, app.view};
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse;
    for (int i = 0; i < app.n_panels; ++i) {
        Panel& p = app.table[i];
        if (!p.visible) continue;
        if (!app.view.show_controls && std::strcmp(p.label, "Controls") == 0) continue;
        const Rect& r = app.layout[static_cast<size_t>(i)];
        if (r.w > 0 && r.h > 0) {
            ImGui::SetNextWindowPos(ImVec2(r.x, r.y), ImGuiCond_Always);
            ImGui::SetNextWindowSize(ImVec2(r.w, r.h), ImGuiCond_Always);
            if (ImGui::Begin(p.label, &p.visible, flags)) p.draw(ctx);
        } else {
            // Panels the grid does not place (lesson, training lab, systems) float over it, opened
            // from the View menu: centred at first (staggered), then movable and resizable.
            const float shift = 30.0f * static_cast<float>(i % 4);
            ImGui::SetNextWindowPos(ImVec2(area.x + area.w * 0.5f + shift, area.y + area.h * 0.5f + shift),
                                    ImGuiCond_FirstUseEver, ImVec2(0.5f, 0.5f));
            ImGui::SetNextWindowSize(ImVec2(area.w * 0.62f, area.h * 0.8f), ImGuiCond_FirstUseEver);
            if (ImGui::Begin(p.label, &p.visible, ImGuiWindowFlags_NoCollapse)) p.draw(ctx);
        }
        ImGui::End();
    }
    draw_status_bar(app, *snap, Rect{0, display.y - status_h, display.x, status_h});

    ImGui::Render();
    int fb_w = 0, fb_h = 0;
    glfwGetFramebufferSize(app.window, &fb_w, &fb_h);
    glViewport(0, 0, fb_w, fb_h);
    const bool hc = app.view.presenter;  // high contrast: pure black behind the panels
    glClearColor(hc ? 0.0f : 0.08f, hc ? 0.0f : 0.08f, hc ? 0.0f : 0.1f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());

    if (new_snapshot) {
        app.shown_generation = snap->generation;
        if (app.request_open && !app.session->busy()) {
            app.view.knob_to_view_ms = ms_since(app.request_time);
            app.request_open = false;
        }
    }
    app.view.frame_ms = ms_since(t0);
    if (app.want_screenshot) {
        app.want_screenshot = false;
        const std::string name = timestamped_png_name();
        try {
            save_framebuffer_png(name, fb_w, fb_h);
            app.view.status = "screenshot saved: " + name;
        } catch (const Error& e) {
            app.view.status = e.what();
        }
    }
    return snap;
}

// [SECTION] main
void apply_options(const Options& o, ViewState& v) {
    if (o.text) v.text_input = *o.text;
    if (o.k) v.knobs.router.k = *o.k;
    if (o.scheme) v.knobs.router.scheme = *o.scheme;
    if (o.capacity) v.knobs.router.capacity_factor = *o.capacity;
    if (o.drop) v.knobs.router.drop_policy = *o.drop;
    // "A CUDA backend is used when a GPU is present": asked for, or by default when usable. The
    // session falls back to the CPU with a note in the status bar when it cannot use it.
    v.knobs.device = o.device ? *o.device : (device_available(Device::Cuda) ? Device::Cuda : Device::Cpu);
    if (o.layer) v.layer = *o.layer;
    if (o.token) v.cursor = *o.token;
    if (o.presenter) {
        v.presenter = true;
        v.show_controls = false;
    }
}

// Renders until the engine has answered, checks the arguments against the result (K vs N,
// layer, token), renders the requested frames and saves the last one.
int run_screenshot(App& app, const Options& o) {
    const Clock::time_point start = Clock::now();
    push_requests(app);
    app.session->wait_idle();
    std::shared_ptr<const Snapshot> snap = app.session->latest();
    if (!snap->error.empty()) throw Error("moelab --screenshot", "knobs", snap->error, "fix the option");
    const int n_layers = static_cast<int>(snap->forward.traces.size());
    if (o.layer && (*o.layer < 0 || *o.layer >= std::max(1, n_layers)))
        throw Error("moelab", "--layer", std::to_string(*o.layer),
                    "the model has " + std::to_string(n_layers) + " MoE layers: 0.." + std::to_string(n_layers - 1));
    const int n_tokens = static_cast<int>(snap->tokens.size());
    if (o.token && (*o.token < 0 || *o.token >= std::max(1, n_tokens)))
        throw Error("moelab", "--token", std::to_string(*o.token),
                    "the text routes " + std::to_string(n_tokens) + " tokens: 0.." + std::to_string(n_tokens - 1));

    double frame_sum_ms = 0;
    int frame_count = 0;
    auto render = [&](double dt) {
        app.view.anim_t = 1.0f;  // pictures show the finished state, not a frame of the animation
        frame(app, dt);
        app.view.anim_t = 1.0f;
        frame_sum_ms += app.view.frame_ms;
        ++frame_count;
        glfwPollEvents();
    };

    if (o.timing) {
        // Knob change -> new snapshot published -> the frame that shows it, twice (K away and back).
        render(0.0);
        double latency_sum = 0;
        const int original_k = app.view.knobs.router.k;
        const int other_k = original_k == 1 ? std::min(2, app.view.knobs.router.n_experts) : 1;
        for (int k : {other_k, original_k}) {
            app.view.knobs.router.k = k;
            const Clock::time_point t0 = Clock::now();
            const uint64_t before = app.shown_generation;
            for (int guard = 0; guard < 100000; ++guard) {
                render(0.0);
                if (app.shown_generation != before && !app.session->busy()) break;
            }
            latency_sum += ms_since(t0);
        }
        frame_sum_ms = 0;
        frame_count = 0;
        for (int i = 0; i < 20; ++i) render(1.0 / 60.0);
        std::printf("timing: text %d bytes, engine %.2f ms per run, knob->view %.2f ms (mean of 2), "
                    "frame build %.2f ms (mean of %d)\n",
                    n_tokens, app.session->latest()->compute_ms, latency_sum / 2, frame_sum_ms / frame_count,
                    frame_count);
    }
    for (int i = 0; i < o.frames; ++i) {
        if (i + 1 == o.frames) app.session->wait_idle();
        app.view.cursor = o.token.value_or(app.view.cursor);
        if (i + 1 == o.frames) {
            app.view.anim_t = 1.0f;
            frame(app, 1.0 / 60.0);
            int fb_w = 0, fb_h = 0;
            glfwGetFramebufferSize(app.window, &fb_w, &fb_h);
            save_framebuffer_png(o.screenshot, fb_w, fb_h);
            glfwSwapBuffers(app.window);
        } else {
            render(1.0 / 60.0);
            glfwSwapBuffers(app.window);
        }
    }
    // Where each panel landed, so tests can look at the right pixels.
    for (int i = 0; i < app.n_panels; ++i) {
        const Rect& r = app.layout[static_cast<size_t>(i)];
        const bool shown = app.table[i].visible && r.w > 0 && r.h > 0 &&
                           (app.view.show_controls || std::strcmp(app.table[i].label, "Controls") != 0);
        if (shown) std::printf("panel \"%s\" %.0f %.0f %.0f %.0f\n", app.table[i].label, r.x, r.y, r.w, r.h);
    }
    std::printf("saved %s (%d frames, %.0f ms)\n", o.screenshot.c_str(), o.frames, ms_since(start));
    return 0;
}

void glfw_error(int code, const char* what) { std::fprintf(stderr, "moelab: GLFW error %d: %s\n", code, what); }

int run(int argc, char** argv) {
    Options opt;
    try {
        for (int i = 1; i < argc; ++i)
            if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
                std::fputs(kUsage, stdout);
                return 0;
            }
        opt = parse_args(argc, argv);
    } catch (const Error& e) {
        std::fprintf(stderr, "%s\n%s", e.what(), kUsage);  // e names "moelab" already
        return 2;
    }

    App app;
    app.screenshot_mode = !opt.screenshot.empty();
    int n_panels = 0;
    app.table = panels(&n_panels);
    app.n_panels = n_panels;

    // The engine first: a bad --model is an argument error, and needs no window.
    std::unique_ptr<Session> session;
    try {
        session = std::make_unique<Session>(opt.model);
    } catch (const Error& e) {
        std::fprintf(stderr, "moelab: %s\n", e.what());
        return 2;
    }
    app.session = session.get();
    app.view.knobs = session->default_knobs();
    app.view.text_input = kDefaultText;

    // Screenshots use the defaults: they neither read nor write the user's settings.
    static std::string ini_path;
    if (!app.screenshot_mode) {
        const std::string dir = config_dir();
        if (!dir.empty()) {
            ini_path = dir + "/imgui.ini";
            app.settings_path = dir + "/settings.json";
        }
        if (!opt.settings.empty()) app.settings_path = opt.settings;
        if (!app.settings_path.empty())
            app.view.status = load_settings(app.settings_path, app.view, app.table, app.n_panels);
    } else if (!opt.settings.empty()) {
        // Read only: a screenshot never writes settings.
        app.view.status = load_settings(opt.settings, app.view, app.table, app.n_panels);
        if (!app.view.status.empty()) std::fprintf(stderr, "moelab: %s\n", app.view.status.c_str());
    }
    // Settings may come from another model: the expert count is the loaded model's.
    app.view.knobs.router.n_experts = session->model().info().moe.n_experts;
    apply_options(opt, app.view);

    glfwSetErrorCallback(glfw_error);
    if (!glfwInit()) {
        std::fprintf(stderr, "moelab: cannot start GLFW (no display? set DISPLAY or run under xvfb-run -a)\n");
        return 1;
    }
    glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
    glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 3);
    glfwWindowHint(GLFW_OPENGL_PROFILE, GLFW_OPENGL_CORE_PROFILE);
    glfwWindowHint(GLFW_OPENGL_FORWARD_COMPAT, GLFW_TRUE);
    if (app.screenshot_mode) glfwWindowHint(GLFW_RESIZABLE, GLFW_FALSE);
    app.window = glfwCreateWindow(opt.width, opt.height, "moelab: Mixture-of-Experts, live", nullptr, nullptr);
    if (!app.window) {
        std::fprintf(stderr, "moelab: cannot open an OpenGL 3.3 window\n");
        glfwTerminate();
        return 1;
    }
    glfwMakeContextCurrent(app.window);
    glfwSwapInterval(app.screenshot_mode ? 0 : 1);
    float xs = 1.0f, ys = 1.0f;
    glfwGetWindowContentScale(app.window, &xs, &ys);
    app.content_scale = std::clamp(std::max(xs, ys), 0.5f, 4.0f);

    IMGUI_CHECKVERSION();
    ImGui::CreateContext();
    ImGuiIO& io = ImGui::GetIO();
    io.IniFilename = ini_path.empty() ? nullptr : ini_path.c_str();
    ImGui_ImplGlfw_InitForOpenGL(app.window, true);
    ImGui_ImplOpenGL3_Init("#version 330 core");

    int rc = 0;
    if (app.screenshot_mode) {
        try {
            rc = run_screenshot(app, opt);
        } catch (const Error& e) {
            std::fprintf(stderr, "moelab: %s\n", e.what());
            rc = 2;
        }
    } else {
        Clock::time_point last = Clock::now();
        while (!glfwWindowShouldClose(app.window)) {
            // Sleep while nothing moves; render continuously while playing, animating or computing.
            const bool active = app.view.playing || app.view.anim_t < 1.0f || session->busy() ||
                                app.session->latest()->generation != app.shown_generation;
            if (active) glfwPollEvents();
            else glfwWaitEventsTimeout(1.0 / 30.0);
            const Clock::time_point now = Clock::now();
            const double dt = std::min(0.25, std::chrono::duration<double>(now - last).count());
            last = now;
            frame(app, dt);
            glfwSwapBuffers(app.window);
        }
        if (!app.settings_path.empty()) {
            const std::string msg = save_settings(app.settings_path, app.view, app.table, app.n_panels);
            if (!msg.empty()) std::fprintf(stderr, "moelab: %s\n", msg.c_str());
        }
    }

    ImGui_ImplOpenGL3_Shutdown();
    ImGui_ImplGlfw_Shutdown();
    ImGui::DestroyContext();
    glfwDestroyWindow(app.window);
    glfwTerminate();
    return rc;
}

}  // namespace
}  // namespace moe::app

int main(int argc, char** argv) { return moe::app::run(argc, argv); }
