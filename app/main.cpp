// moelab: the desktop app. GLFW window, OpenGL 3.3 core, Dear ImGui 1.86 (Debian's libimgui-dev).
//
// [SECTION] Arguments      command line, incl. --screenshot (headless pictures for tests and docs)
// [SECTION] App state      window, session, view state, what was last sent to the engine
// [SECTION] Fonts          DPI x zoom x presenter (x window size in presenter), rebuilt on change
// [SECTION] Engine sync    push knob/text changes (never blocking), pick up new snapshots, playback
// [SECTION] Files          sessions, lessons, screenshots: paths typed in one prompt
// [SECTION] Menus          File, Edit (undo/redo), View from the panel table, Help; status bar
// [SECTION] Keyboard       shortcuts; silent while the user types in a text box (Esc leaves it)
// [SECTION] Frame          one frame: sync, menus, panels (grid, tabs, floating), render, report
// [SECTION] main          incl. the event loop that renders only when something changes
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_impl_glfw.h>
#include <imgui_impl_opengl3.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/fonts.h"
#include "app/gl_shaders.h"
#include "app/layout.h"
#include "app/layout_dump.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/panels_lab.h"
#include "app/random_model.h"
#include "app/screenshot.h"
#include "app/settings.h"
#include "app/theme.h"
#include "app/undo.h"
#include "app/view_state.h"
#include "core/engine/cpu_baseline.h"
#include "core/engine/cpu_features.h"
#include "core/error.h"
#include "app/model_open.h"
#include "core/session.h"
#include "core/models/lm.h"
#include "core/teach/lesson.h"

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
    std::string random_model;            // --random-model SPEC (app/random_model.h)
    std::string settings;                // --settings FILE instead of ~/.config/moelab/settings.json
    std::optional<Device> device;        // --device cpu|cuda; default: CUDA when a GPU is usable
    std::string dump_layout;             // --dump-layout FILE: the frame's own report (layout_dump.h)
    std::string lesson;                  // --lesson FILE: open this lesson at start
};

constexpr const char* kUsage =
    "usage: moelab [--model PATH] [--settings FILE] [--text T] [--k K] [--scheme NAME]\n"
    "              [--capacity C] [--drop POLICY] [--layer L] [--token I] [--presenter] [--size WxH]\n"
    "              [--device cpu|cuda]   (default: cuda when a GPU is usable, else cpu)\n"
    "              [--lesson FILE] [--dump-layout FILE]   (panel and widget rectangles, cut text, state)\n"
    "              [--random-model experts=N,layers=L,...]   (demo/testing: random weights, real shapes)\n"
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
            if (!o.scheme) throw Error("moelab", a, "unknown scheme '" + v + "'", "one of the schemes listed below");
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
        } else if (a == "--random-model") {
            o.random_model = value();
            (void)parse_random_model(o.random_model);  // a bad spec is an argument error, before any window
        } else if (a == "--device") {
            o.device = parse_device(value(), "moelab", a);
        } else if (a == "--dump-layout") {
            o.dump_layout = value();
            if (o.dump_layout.empty()) throw Error("moelab", a, "is empty", "give a file name");
        } else if (a == "--lesson") {
            o.lesson = value();
            if (o.lesson.empty()) throw Error("moelab", a, "is empty", "give a lesson JSON file, e.g. scenarios/01_top_k.json");
        } else if (a == "--settings") {
            o.settings = value();
            if (o.settings.empty()) throw Error("moelab", a, "is empty", "give a settings JSON file");
        } else {
            throw Error("moelab", a, "is not an option", "see moelab --help");
        }
    }
    if (!o.model.empty() && !o.random_model.empty())
        throw Error("moelab", "--random-model", "and --model both given", "open one model");
    if (o.screenshot.empty() && o.timing)
        throw Error("moelab", "--timing", "works with --screenshot only", "add --screenshot FILE");
    return o;
}

// [SECTION] App state
struct App {
    GLFWwindow* window = nullptr;
    std::unique_ptr<Session> owned_session;
    Session* session = nullptr;     // owned_session, or a test's
    ModelOpener* opener = nullptr;  // File > Open model, a dropped folder (app/model_open.h)
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
    Layout layout;                  // this frame's
    int tab_selected = -1;          // folded panel shown in the tabs; -1 = the first
    std::vector<char> visible_before;  // each panel's visibility last frame: a tab just opened is selected

    // Fonts in use.
    float font_scale = 0.0f;

    // Undo / redo of the knobs and the layer.
    struct KnobState {
        SessionKnobs knobs;
        int layer = 0;
    };
    static bool same_state(const KnobState& a, const KnobState& b) { return same_knobs(a.knobs, b.knobs) && a.layer == b.layer; }
    UndoHistory<KnobState, bool (*)(const KnobState&, const KnobState&)> history{&App::same_state};

    // Settings are saved when they change (after a short quiet time), not only on a clean close.
    std::string saved_settings;     // what was last written
    double settings_dirty_since = -1;
    std::string startup_problem;    // shown in the status bar until dismissed (e.g. a bad --model)

    // The file prompt (File menu): what it is for and the path being typed.
    enum class Prompt { None, OpenSession, SaveSession, OpenLesson } prompt = Prompt::None;
    std::string prompt_path;
    bool prompt_focus = false;

    // Fullscreen toggle remembers the windowed placement.
    int windowed_x = 100, windowed_y = 100, windowed_w = 1280, windowed_h = 720;
    bool want_screenshot = false;   // Ctrl+S: saved after this frame renders
    bool want_quit = false;         // File > Quit, Ctrl+Q
    bool controls_before_presenter = true;
    long long frame_index = 0;
};

// [SECTION] Fonts
// Presenter fonts are 1.6x at 1920x1080 and shrink with a smaller window (to 0.7 of that), in
// steps of 0.05 so dragging the window edge does not rebuild the atlas every frame.
float wanted_font_scale(const App& app) {
    if (!app.view.presenter) return app.view.ui_scale;
    int w = 1920, h = 1080;
    if (app.window) glfwGetWindowSize(app.window, &w, &h);
    const float fit = std::clamp(std::min(static_cast<float>(w) / 1920.0f, static_cast<float>(h) / 1080.0f), 0.7f, 1.0f);
    return app.view.ui_scale * std::round(1.6f * fit * 20.0f) / 20.0f;
}

// Rebuilding the atlas is slow; do it only when DPI, zoom or presenter mode changed, and never
// between NewFrame and Render.
void update_fonts(App& app) {
    app.view.ui_scale = app.content_scale * app.view.user_zoom;
    const float s = wanted_font_scale(app);
    // CJK, emoji and symbols are loaded for the glyphs the text needs (app/fonts.h).
    want_glyphs(app.view.text_input);
    if (s == app.font_scale && !glyphs_changed()) return;
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
    // Before the first run there are no traces yet: clamping then would undo a restored layer.
    if (snap.generation > 0) v.cursor = std::clamp(v.cursor, 0, std::max(0, n_tokens - 1));
    if (n_layers > 0) v.layer = std::clamp(v.layer, 0, n_layers - 1);
    if (v.cursor != app.last_cursor || snap.generation != app.shown_generation) v.anim_t = 0.0f;
    app.last_cursor = v.cursor;
    v.anim_t = std::min(1.0f, v.anim_t + static_cast<float>(dt) * 2.5f);  // arcs grow in 0.4 s
    v.time_s += dt;
}

// [SECTION] Files
// Runs another model in a fresh session (the training lab's fine-tuned copy, the built-in one
// again). The knobs and text are sent to it on the next frame; a model that cannot be opened
// leaves the current one running and says why.
void run_session(App& app, std::unique_ptr<Session> next, const std::string& label) {
    app.owned_session = std::move(next);  // the old session's worker stops here
    app.session = app.owned_session.get();
    app.sent_any = false;
    app.shown_generation = 0;
    app.view.info = "running " + label;
    app.view.status.clear();
}

void open_model(App& app, const std::string& path) {
    try {
        run_session(app, std::make_unique<Session>(path == "builtin" ? std::string() : path),
                    path == "builtin" ? std::string("the built-in model") : path);
    } catch (const Error& e) {
        app.view.status = e.what();
    }
}

// A screenshot of a lesson that names a model: that model, loaded before the first frame.
void load_lesson_model_now(App& app) {
    const std::string path = app.view.lesson_model_load;
    app.view.lesson_model_load.clear();
    if (path.empty()) return;
    try {
        run_session(app, std::make_unique<Session>(path), path);
        app.view.knobs = app.session->default_knobs();
    } catch (const Error& e) {
        app.view.lesson_model_error = e.what();
    }
}

std::string exports_path(const std::string& name) { return export_folder() + "/" + name; }

std::string timestamped_png_name() {
    char buf[64];
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    std::strftime(buf, sizeof(buf), "moelab-%Y%m%d-%H%M%S.png", &tm);
    return buf;
}

// Expands a leading ~ so a typed "~/class.json" lands in the home folder.
std::string expand_home(const std::string& path) {
    if (path.size() >= 2 && path[0] == '~' && path[1] == '/') {
        const char* home = std::getenv("HOME");
        if (home && *home) return std::string(home) + path.substr(1);
    }
    return path;
}

void open_prompt(App& app, App::Prompt what) {
    app.prompt = what;
    app.prompt_focus = true;
    if (what == App::Prompt::OpenLesson) {
        std::vector<std::string> files;
        lesson_titles(&files);
        app.prompt_path = files.empty() ? default_scenarios_dir() + "/" : files.front();
    }
    else if (app.prompt_path.empty() || what != App::Prompt::OpenSession) app.prompt_path = exports_path("session.json");
}

void run_prompt(App& app, PanelContext& ctx) {
    const std::string path = expand_home(app.prompt_path);
    ViewState& v = app.view;
    std::string problem;
    switch (app.prompt) {
        case App::Prompt::SaveSession: {
            std::error_code ec;
            std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
            problem = save_session_file(path, v);
            if (problem.empty()) v.info = "session saved: " + path;
            break;
        }
        case App::Prompt::OpenSession:
            problem = load_session_file(path, v);
            if (problem.empty()) v.info = "session opened: " + path;
            break;
        case App::Prompt::OpenLesson:
            problem = open_lesson_file(path, ctx);
            if (problem.empty()) v.info = "lesson opened: " + path;
            break;
        case App::Prompt::None: break;
    }
    v.status = problem;
    if (problem.empty()) app.prompt = App::Prompt::None;
}

// One prompt for every file the menus open or save: there is no native file dialog in 1.86.
void draw_prompt(App& app, PanelContext& ctx) {
    if (app.prompt == App::Prompt::None) return;
    const char* title = app.prompt == App::Prompt::SaveSession ? "Save session"
                        : app.prompt == App::Prompt::OpenSession ? "Open session"
                                                                 : "Open lesson";
    ImGui::OpenPopup(title);
    const ImVec2 display = ImGui::GetIO().DisplaySize;
    ImGui::SetNextWindowPos(ImVec2(display.x * 0.5f, display.y * 0.4f), ImGuiCond_Always, ImVec2(0.5f, 0.5f));
    ImGui::SetNextWindowSize(ImVec2(std::min(display.x * 0.9f, ImGui::GetFontSize() * 40), 0));
    if (ImGui::BeginPopupModal(title, nullptr, ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoMove)) {
        ImGui::TextWrapped("%s", app.prompt == App::Prompt::OpenLesson
                                     ? "A lesson JSON file (scenarios/ holds the shipped ones; docs/LESSONS.md the format)."
                                     : "A session file holds the text, the knobs, the layer and the token.");
        if (app.prompt_focus) ImGui::SetKeyboardFocusHere();
        app.prompt_focus = false;
        ImGui::SetNextItemWidth(-1);
        const bool enter = ImGui::InputText("##path", &app.prompt_path, ImGuiInputTextFlags_EnterReturnsTrue);
        dump::item("prompt path");
        if (!app.view.status.empty()) ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.35f, 1.0f), "%s", app.view.status.c_str());
        const bool ok = ImGui::Button(app.prompt == App::Prompt::SaveSession ? "Save" : "Open");
        dump::item("prompt ok");
        ImGui::SameLine();
        const bool cancel = ImGui::Button("Cancel") || ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false);
        if (enter || ok) run_prompt(app, ctx);
        if (cancel) {
            app.prompt = App::Prompt::None;
            app.view.status.clear();
        }
        if (app.prompt == App::Prompt::None) ImGui::CloseCurrentPopup();
        ImGui::EndPopup();
    }
}

void save_screenshot(App& app, int fb_w, int fb_h) {
    const std::string path = exports_path(timestamped_png_name());
    try {
        std::error_code ec;
        std::filesystem::create_directories(export_folder(), ec);
        if (ec) throw Error(export_folder(), "export folder", "cannot be created: " + ec.message(), "pick a writable folder");
        save_framebuffer_png(path, fb_w, fb_h);
        app.view.info = "screenshot saved: " + path;
    } catch (const Error& e) {
        app.view.status = e.what();
    }
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

void apply_history(App& app, const App::KnobState& s) {
    const Device keep = app.view.knobs.device;  // where it runs is not a step to undo
    app.view.knobs = s.knobs;
    app.view.knobs.device = keep;
    app.view.layer = s.layer;
}

void undo(App& app) {
    if (app.history.can_undo()) apply_history(app, app.history.undo());
}
void redo(App& app) {
    if (app.history.can_redo()) apply_history(app, app.history.redo());
}

bool begin_menu(const char* label) {
    const bool open = ImGui::BeginMenu(label);
    dump::item(std::string("menu ") + label);
    return open;
}

bool menu_item(const char* label, const char* shortcut = nullptr, bool* selected = nullptr, bool enabled = true) {
    const bool clicked = selected ? ImGui::MenuItem(label, shortcut, selected, enabled)
                                  : ImGui::MenuItem(label, shortcut, false, enabled);
    dump::item(std::string("menuitem ") + label);
    return clicked;
}

float draw_menu_bar(App& app) {
    ViewState& v = app.view;
    float height = 0;
    if (ImGui::BeginMainMenuBar()) {
        if (begin_menu("File")) {
            if (menu_item("Open model...") && app.opener) app.opener->show();
            teach_hover("A Hugging Face MoE folder (Mixtral, Qwen-MoE, OLMoE, Granite, DeepSeek): the same knobs, a real model.");
            if (menu_item("Open lesson...")) open_prompt(app, App::Prompt::OpenLesson);
            teach_hover("A lesson file: steps that set the knobs and say what to look at.");
            ImGui::Separator();
            if (menu_item("Open session...")) open_prompt(app, App::Prompt::OpenSession);
            if (menu_item("Save session...")) open_prompt(app, App::Prompt::SaveSession);
            teach_hover("The text, the knobs, the layer and the token, to pick the class up where it was left.");
            ImGui::Separator();
            if (menu_item("Save screenshot", "Ctrl+S")) app.want_screenshot = true;
            teach_hover(("Into the export folder, " + export_folder()).c_str());
            ImGui::Separator();
            if (menu_item("Quit", "Ctrl+Q")) app.want_quit = true;
            ImGui::EndMenu();
        }
        if (begin_menu("Edit")) {
            if (menu_item("Undo knob change", "Ctrl+Z", nullptr, app.history.can_undo())) undo(app);
            if (menu_item("Redo knob change", "Ctrl+Y", nullptr, app.history.can_redo())) redo(app);
            ImGui::EndMenu();
        }
        if (begin_menu("View")) {
            for (int i = 0; i < app.n_panels; ++i) menu_item(app.table[i].label, nullptr, &app.table[i].visible);
            ImGui::Separator();
            menu_item("Controls column", nullptr, &v.show_controls);
            bool presenter = v.presenter;
            if (menu_item("Presenter mode", "P / F5", &presenter)) set_presenter(app, presenter);
            teach_hover("Large fonts and high contrast for a lecture hall; the controls fold away and, on a "
                        "small projector, the secondary panels become tabs.");
            bool fullscreen = v.fullscreen;
            if (menu_item("Fullscreen", "F11", &fullscreen)) set_fullscreen(app, fullscreen);
            if (menu_item("Zoom in", "Ctrl+=")) zoom(app, 1.1f);
            if (menu_item("Zoom out", "Ctrl+-")) zoom(app, 1.0f / 1.1f);
            if (menu_item("Reset zoom", "Ctrl+0")) v.user_zoom = 1.0f;
            ImGui::EndMenu();
        }
        if (begin_menu("Help")) {
            if (menu_item("Getting started")) {
                const int g = find_panel(app.table, app.n_panels, "Getting started");
                if (g >= 0) app.table[g].visible = true;
            }
            ImGui::Separator();
            ImGui::TextUnformatted(
                "Space play/pause   Left/Right step   Home/End jump\n"
                "1-9 set K   Up/Down layer   S next scheme   Esc leave the text box\n"
                "P or F5 presenter   F11 fullscreen   Ctrl+=/- zoom\n"
                "Ctrl+Z/Y undo/redo knobs   Ctrl+S screenshot   Ctrl+Q quit");
            ImGui::EndMenu();
        }
        height = ImGui::GetWindowSize().y;
        ImGui::EndMainMenuBar();
    }
    return height;
}

// The status bar: one line per message, wrapped, never cut; the engine numbers last.
struct StatusLine {
    std::string text;
    ImVec4 color;
};

std::vector<StatusLine> status_lines(const App& app, const Snapshot& snap) {
    const ImVec4 red(1.0f, 0.45f, 0.35f, 1.0f), amber(1.0f, 0.8f, 0.3f, 1.0f), green(0.45f, 0.9f, 0.55f, 1.0f);
    std::vector<StatusLine> lines;
    if (!app.startup_problem.empty()) lines.push_back({app.startup_problem, red});
    // The engine's error, once, here: every view still shows the last good result.
    if (!snap.error.empty())
        lines.push_back({std::string(scheme_label(app.view.knobs.router.scheme)) + " cannot run: " + snap.error +
                             "  (the views show the last result that ran, " + scheme_label(snap.knobs.router.scheme) + ")",
                         red});
    if (!app.view.status.empty()) lines.push_back({app.view.status, red});
    if (ImGui::GetIO().WantTextInput)
        lines.push_back({"Typing in a text box: keys go into the text, shortcuts are off. Esc leaves it.", amber});
    if (!app.view.info.empty()) lines.push_back({app.view.info, green});
    for (const std::string* note : {&app.session->model_note(), &snap.device_note})
        if (!note->empty()) lines.push_back({*note, amber});
    return lines;
}

float status_bar_height(const std::vector<StatusLine>& lines, float width) {
    const ImGuiStyle& style = ImGui::GetStyle();
    const float wrap = std::max(50.0f, width - style.WindowPadding.x * 2);
    float h = ImGui::GetTextLineHeight();  // the engine numbers
    for (const StatusLine& l : lines)
        h += ImGui::CalcTextSize(l.text.c_str(), nullptr, false, wrap).y + style.ItemSpacing.y;
    return std::floor(std::min(h, ImGui::GetTextLineHeightWithSpacing() * 5) + style.WindowPadding.y * 2 + 2);
}

void draw_status_bar(App& app, const Snapshot& snap, const std::vector<StatusLine>& lines, const Rect& r) {
    ImGui::SetNextWindowPos(ImVec2(r.x, r.y), ImGuiCond_Always);
    ImGui::SetNextWindowSize(ImVec2(r.w, r.h), ImGuiCond_Always);
    ImGui::SetNextWindowBgAlpha(0.0f);  // part of the grid: the clear is its background
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoMove |
                                   ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoSavedSettings |
                                   ImGuiWindowFlags_NoFocusOnAppearing | ImGuiWindowFlags_NoBringToFrontOnFocus;
    if (ImGui::Begin("##status", nullptr, flags)) {
        for (const StatusLine& l : lines) {
            dump::message(l.text);
            ImGui::PushStyleColor(ImGuiCol_Text, l.color);
            ImGui::TextWrapped("%s", l.text.c_str());
            ImGui::PopStyleColor();
        }
        char stats[192];
        std::snprintf(stats, sizeof stats, "engine %.1f ms on %s (%s kernels) | knob->view %.0f ms | frame %.1f ms%s",
                      snap.compute_ms, device_name(snap.device), isa_name(active_isa()), app.view.knob_to_view_ms,
                      app.view.frame_ms, app.session->busy() ? " | computing..." : "");
        ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
        ImGui::TextWrapped("%s", stats);
        ImGui::PopStyleColor();
        if (ImGui::IsItemHovered())
            ImGui::SetTooltip("CPU kernels: %s\nthe rest of moelab built for MOE_ARCH=%s", isa_reason().c_str(), built_for_arch());
        dump::current_window("status bar");
    }
    ImGui::End();
}

// [SECTION] Keyboard
void handle_keys(App& app, const Snapshot& snap) {
    ImGuiIO& io = ImGui::GetIO();
    ViewState& v = app.view;
    const bool ctrl = io.KeyCtrl;
    if (ctrl) {
        if (ImGui::IsKeyPressed(GLFW_KEY_Q, false)) app.want_quit = true;
        if (ImGui::IsKeyPressed(GLFW_KEY_S, false)) app.want_screenshot = true;
        if (io.WantTextInput) return;  // Ctrl+Z / Ctrl+Y undo the typing inside the text box
        if (ImGui::IsKeyPressed(GLFW_KEY_Z, false)) io.KeyShift ? redo(app) : undo(app);
        if (ImGui::IsKeyPressed(GLFW_KEY_Y, false)) redo(app);
        if (ImGui::IsKeyPressed(GLFW_KEY_EQUAL) || ImGui::IsKeyPressed(GLFW_KEY_KP_ADD)) zoom(app, 1.1f);
        if (ImGui::IsKeyPressed(GLFW_KEY_MINUS) || ImGui::IsKeyPressed(GLFW_KEY_KP_SUBTRACT)) zoom(app, 1.0f / 1.1f);
        if (ImGui::IsKeyPressed(GLFW_KEY_0, false)) v.user_zoom = 1.0f;
        return;
    }
    if (ImGui::IsKeyPressed(GLFW_KEY_F11, false)) set_fullscreen(app, !v.fullscreen);
    if (ImGui::IsKeyPressed(GLFW_KEY_F5, false)) set_presenter(app, !v.presenter);
    if (io.WantTextInput) return;  // typing in the text box: letters and arrows are the text's
    if (ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false)) {
        v.status.clear();
        v.info.clear();
        app.startup_problem.clear();
    }
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

// [SECTION] Frame
// What the frame showed, for --dump-layout: the knobs the picture was computed with, not the
// ones asked for, so a test sees the change only once it is on screen.
std::string frame_state(const App& app, const Snapshot& snap) {
    const ViewState& v = app.view;
    const int n_layers = static_cast<int>(snap.forward.traces.size());
    const RoutingTrace* tr = v.layer < n_layers ? &snap.forward.traces[static_cast<size_t>(v.layer)] : nullptr;
    int cursor_experts = 0;
    if (tr && v.cursor < tr->n_tokens && tr->token_begin.size() > static_cast<size_t>(v.cursor) + 1)
        cursor_experts = static_cast<int>(tr->token_pairs(v.cursor).size());
    int w = 0, h = 0;
    glfwGetWindowSize(app.window, &w, &h);
    char buf[768];
    std::snprintf(buf, sizeof buf,
                  "k=%d scheme=%s n_tokens=%zu layer=%d token=%d token_experts=%d presenter=%d window=%dx%d "
                  "typing=%d error=%d lesson=%s model=%s",
                  tr ? tr->k : 0, scheme_name(snap.knobs.router.scheme), snap.tokens.size(), v.layer, v.cursor,
                  cursor_experts, v.presenter ? 1 : 0, w, h, ImGui::GetIO().WantTextInput ? 1 : 0,
                  snap.error.empty() ? 0 : 1, lesson_state().c_str(),
                  app.session->model_path() == builtin_model_path()
                      ? "builtin"
                      : std::filesystem::path(app.session->model_path()).filename().string().c_str());
    return buf;
}

void draw_panel_body(Panel& p, PanelContext& ctx) {
    p.draw(ctx);
    dump::current_window(p.label);
}

// Tab names short enough that four tabs fit a third of a 1024-pixel projector at presenter sizes.
const char* tab_label(const char* label) {
    if (std::strcmp(label, "Gate heatmap") == 0) return "Heatmap";
    if (std::strcmp(label, "Parameters and FLOPs") == 0) return "Params";
    if (std::strcmp(label, "Model overview") == 0) return "Overview";
    return label;
}

// Panels sharing a slot (the folded panels of presenter mode; the heatmap and the overview):
// one tab each, in a window where the grid put them. Outside presenter mode a tab can be closed
// like a panel. A tab whose panel was just opened (View menu) or that a lesson points at is
// brought to the front.
void draw_tabs(App& app, PanelContext& ctx) {
    const Rect& r = app.layout.tabs;
    if (app.visible_before.size() != static_cast<size_t>(app.n_panels)) {
        app.visible_before.resize(static_cast<size_t>(app.n_panels));
        for (int i = 0; i < app.n_panels; ++i) app.visible_before[static_cast<size_t>(i)] = app.table[i].visible;
    }
    ImGui::SetNextWindowPos(ImVec2(r.x, r.y), ImGuiCond_Always);
    ImGui::SetNextWindowSize(ImVec2(r.w, r.h), ImGuiCond_Always);
    ImGui::SetNextWindowBgAlpha(0.0f);  // part of the grid: the clear is its background
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoTitleBar | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize |
                                   ImGuiWindowFlags_NoCollapse | ImGuiWindowFlags_NoScrollbar;
    if (ImGui::Begin("##folded panels", nullptr, flags) && ImGui::BeginTabBar("##tabs", ImGuiTabBarFlags_FittingPolicyResizeDown)) {
        // Dear ImGui shortens tabs that do not fit ("Gate he..."): say so in the layout report.
        const ImGuiStyle& style = ImGui::GetStyle();
        float need = 0;
        std::string names;
        for (int id : app.layout.tabbed) {
            need += ImGui::CalcTextSize(tab_label(app.table[id].label)).x + style.FramePadding.x * 2 + style.ItemInnerSpacing.x;
            names += std::string(tab_label(app.table[id].label)) + " ";
        }
        if (need > ImGui::GetContentRegionAvail().x) dump::clipped("tabs: " + names, need, ImGui::GetContentRegionAvail().x);
        for (int id : app.layout.tabbed) {
            Panel& p = app.table[id];
            const bool lesson_points_here = app.view.look_at_panel == p.label;
            ImGuiTabItemFlags tab_flags = ImGuiTabItemFlags_None;
            const bool just_opened = !app.visible_before[static_cast<size_t>(id)];
            if ((lesson_points_here || just_opened) && app.tab_selected != id) {
                tab_flags = ImGuiTabItemFlags_SetSelected;  // the lesson says "look at" this one, or it was just asked for
                app.tab_selected = id;
            }
            const std::string tab = std::string(tab_label(p.label)) + "###" + p.label;
            const bool open = ImGui::BeginTabItem(tab.c_str(), app.view.presenter ? nullptr : &p.visible, tab_flags);
            dump::item(std::string("tab ") + p.label);
            if (open) {
                app.tab_selected = id;
                ImGui::BeginChild(p.label);
                draw_panel_body(p, ctx);
                ImGui::EndChild();
                ImGui::EndTabItem();
            }
        }
        ImGui::EndTabBar();
    }
    ImGui::End();
}

// The lesson's "look at": a bright frame around the panel it names, wherever it is.
void outline_look_at(const App& app) {
    if (app.view.look_at_panel.empty()) return;
    const int id = find_panel(app.table, app.n_panels, app.view.look_at_panel.c_str());
    if (id < 0) return;
    Rect r = app.layout.rects[static_cast<size_t>(id)];
    if (r.empty() && std::find(app.layout.tabbed.begin(), app.layout.tabbed.end(), id) != app.layout.tabbed.end())
        r = app.layout.tabs;
    if (r.empty()) return;
    ImGui::GetForegroundDrawList()->AddRect(ImVec2(r.x + 1, r.y + 1), ImVec2(r.x + r.w - 1, r.y + r.h - 1),
                                            kColorLookAt, 4.0f, 0, 3.0f);
}

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
    dump::begin_frame();
    if (!app.screenshot_mode && app.prompt == App::Prompt::None) handle_keys(app, *snap);

    const float menu_h = draw_menu_bar(app);
    if (app.opener) app.opener->draw();
    const ImVec2 display = ImGui::GetIO().DisplaySize;
    const std::vector<StatusLine> lines = status_lines(app, *snap);
    const float status_h = status_bar_height(lines, display.x);
    const Rect area{0, menu_h, display.x, std::max(0.0f, display.y - menu_h - status_h)};
    // Minimum sizes follow the fonts, so presenter mode gets room for its larger text.
    const bool fold = app.view.presenter && presenter_folds(display.x, display.y);
    app.layout = compute_layout(area, wanted_font_scale(app), app.view.show_controls, fold, app.table, app.n_panels);

    PanelContext ctx{*app.session, *snap, app.view};
    app.view.keep_rendering = false;  // the panels say again this frame whether they run live
    const ImGuiWindowFlags flags = ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoResize | ImGuiWindowFlags_NoCollapse;
    for (int i = 0; i < app.n_panels; ++i) {
        Panel& p = app.table[i];
        if (!p.visible) continue;
        if (!app.view.show_controls && std::strcmp(p.label, "Controls") == 0) continue;
        if (std::find(app.layout.tabbed.begin(), app.layout.tabbed.end(), i) != app.layout.tabbed.end()) continue;
        const Rect& r = app.layout.rects[static_cast<size_t>(i)];
        if (!r.empty()) {
            ImGui::SetNextWindowPos(ImVec2(r.x, r.y), ImGuiCond_Always);
            ImGui::SetNextWindowSize(ImVec2(r.w, r.h), ImGuiCond_Always);
            // The grid's panels tile the window, and the clear below is their background colour:
            // not shading each one's background again saves ~40% of a frame on software GL
            // (llvmpipe spends most of a frame shading pixels, most of them window backgrounds).
            ImGui::SetNextWindowBgAlpha(0.0f);
            if (ImGui::Begin(p.label, &p.visible, flags)) draw_panel_body(p, ctx);
        } else {
            // Panels the grid does not place (training lab, systems, getting started) float over
            // it, opened from the menus: centred at first (staggered), then movable and resizable.
            // Getting started (floating only while a lesson holds the column) sits bottom right.
            const bool card = std::strcmp(p.label, "Getting started") == 0;
            const float shift = 30.0f * static_cast<float>(i % 4);
            if (card) {
                ImGui::SetNextWindowPos(ImVec2(area.x + area.w - 8, area.y + area.h - 8), ImGuiCond_FirstUseEver, ImVec2(1, 1));
                ImGui::SetNextWindowSize(ImVec2(std::max(area.w * 0.42f, std::min(area.w, 420.0f)), area.h * 0.62f),
                                         ImGuiCond_FirstUseEver);
            } else {
                ImGui::SetNextWindowPos(ImVec2(area.x + area.w * 0.5f + shift, area.y + area.h * 0.5f + shift),
                                        ImGuiCond_FirstUseEver, ImVec2(0.5f, 0.5f));
                ImGui::SetNextWindowSize(ImVec2(area.w * 0.62f, area.h * 0.8f), ImGuiCond_FirstUseEver);
            }
            if (ImGui::Begin(p.label, &p.visible, ImGuiWindowFlags_NoCollapse)) draw_panel_body(p, ctx);
        }
        ImGui::End();
    }
    if (!app.layout.tabbed.empty()) draw_tabs(app, ctx);
    app.visible_before.resize(static_cast<size_t>(app.n_panels));
    for (int i = 0; i < app.n_panels; ++i) app.visible_before[static_cast<size_t>(i)] = app.table[i].visible;
    outline_look_at(app);
    draw_status_bar(app, *snap, lines, Rect{0, display.y - status_h, display.x, status_h});
    draw_prompt(app, ctx);

    ImGui::Render();
    int fb_w = 0, fb_h = 0;
    glfwGetFramebufferSize(app.window, &fb_w, &fb_h);
    glViewport(0, 0, fb_w, fb_h);
    // The panels' own background (pure black in presenter mode): the grid's panels draw none.
    const ImVec4 bg = ImGui::GetStyle().Colors[ImGuiCol_WindowBg];
    glClearColor(bg.x, bg.y, bg.z, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());

    if (new_snapshot) {
        app.shown_generation = snap->generation;
        if (app.request_open && !app.session->busy()) {
            app.view.knob_to_view_ms = ms_since(app.request_time);
            app.request_open = false;
        }
    }
    // A screenshot's timed frames include the drawing itself: software GL (llvmpipe) rasterises
    // at the flush, so without this --timing would count only building the draw lists.
    if (app.screenshot_mode) glFinish();
    app.view.frame_ms = ms_since(t0);
    if (app.want_screenshot) {
        app.want_screenshot = false;
        save_screenshot(app, fb_w, fb_h);
    }
    ++app.frame_index;
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

double process_cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// What software GL is given to draw in a frame (for --timing): on llvmpipe the time goes with
// triangles and the pixels they cover, not with what the panels compute.
void print_draw_load() {
    const ImDrawData* dd = ImGui::GetDrawData();
    if (dd == nullptr || dd->DisplaySize.x <= 0 || dd->DisplaySize.y <= 0) return;
    struct Load {
        double area = 0;
        int triangles = 0, calls = 0;
        std::string name;
    };
    std::vector<Load> windows;
    Load all;
    for (int i = 0; i < dd->CmdListsCount; ++i) {
        const ImDrawList* dl = dd->CmdLists[i];
        Load w;
        w.name = dl->_OwnerName ? dl->_OwnerName : "?";
        for (const ImDrawCmd& cmd : dl->CmdBuffer) {
            ++w.calls;
            for (unsigned e = 0; e + 2 < cmd.ElemCount; e += 3) {
                const ImVec2 a = dl->VtxBuffer[dl->IdxBuffer[cmd.IdxOffset + e]].pos;
                const ImVec2 b = dl->VtxBuffer[dl->IdxBuffer[cmd.IdxOffset + e + 1]].pos;
                const ImVec2 c = dl->VtxBuffer[dl->IdxBuffer[cmd.IdxOffset + e + 2]].pos;
                w.area += std::fabs((b.x - a.x) * (c.y - a.y) - (c.x - a.x) * (b.y - a.y)) * 0.5;
                ++w.triangles;
            }
        }
        all.area += w.area;
        all.triangles += w.triangles;
        all.calls += w.calls;
        windows.push_back(std::move(w));
    }
    const double screen = static_cast<double>(dd->DisplaySize.x) * dd->DisplaySize.y;
    std::sort(windows.begin(), windows.end(), [](const Load& a, const Load& b) { return a.triangles > b.triangles; });
    std::printf("timing: draw %d triangles, %d draw calls, %d vertices, covering %.2f screens (before clipping); most:",
                all.triangles, all.calls, dd->TotalVtxCount, all.area / screen);
    for (size_t i = 0; i < windows.size() && i < 5; ++i)
        std::printf(" %s %d (%.2f)", windows[i].name.c_str(), windows[i].triangles, windows[i].area / screen);
    std::printf("\n");
}

// Renders until the engine has answered, checks the arguments against the result (K vs N,
// layer, token), renders the requested frames and saves the last one.
int run_screenshot(App& app, const Options& o) {
    const Clock::time_point start = Clock::now();
    push_requests(app);
    app.session->wait_idle();
    std::shared_ptr<const Snapshot> snap = app.session->latest();
    if (!snap->error.empty()) throw Error("the knobs given", "", snap->error, "fix the option");
    const int n_layers = static_cast<int>(snap->forward.traces.size());
    if (o.layer && (*o.layer < 0 || *o.layer >= std::max(1, n_layers)))
        throw Error("--layer", "", std::to_string(*o.layer) + " is not a layer of this model",
                    "the model has " + std::to_string(n_layers) + " MoE layers: 0.." + std::to_string(n_layers - 1));
    const int n_tokens = static_cast<int>(snap->tokens.size());
    if (o.token && (*o.token < 0 || *o.token >= std::max(1, n_tokens)))
        throw Error("--token", "", std::to_string(*o.token) + " is not a token of the text",
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
        // CPU time of the whole process (software GL's raster threads included) over the same
        // frames: on a loaded machine wall time also counts waiting for a core, CPU time does not.
        const double cpu0 = process_cpu_ms();
        for (int i = 0; i < 20; ++i) render(1.0 / 60.0);
        const double cpu_ms = (process_cpu_ms() - cpu0) / 20.0;
        std::printf("timing: text %d bytes, engine %.2f ms per run, knob->view %.2f ms (mean of 2), "
                    "frame build %.2f ms (mean of %d), frame cpu %.2f ms\n",
                    n_tokens, app.session->latest()->compute_ms, latency_sum / 2, frame_sum_ms / frame_count,
                    frame_count, cpu_ms);
        print_draw_load();
    }
    for (int i = 0; i < o.frames; ++i) {
        if (i + 1 == o.frames) app.session->wait_idle();
        app.view.cursor = o.token.value_or(app.view.cursor);
        if (i + 1 == o.frames) {
            app.view.anim_t = 1.0f;
            draw_report().on = true;  // the panels say what they drew, for the tests
            draw_report().lines.clear();
            std::shared_ptr<const Snapshot> shown = frame(app, 1.0 / 60.0);
            draw_report().on = false;
            if (dump::enabled()) dump::end_frame(frame_state(app, *shown));
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
        const Rect& r = app.layout.rects[static_cast<size_t>(i)];
        const bool shown = app.table[i].visible && !r.empty() &&
                           (app.view.show_controls || std::strcmp(app.table[i].label, "Controls") != 0);
        if (shown) std::printf("panel \"%s\" %.0f %.0f %.0f %.0f\n", app.table[i].label, r.x, r.y, r.w, r.h);
    }
    for (const std::string& line : draw_report().lines) std::printf("drawn %s\n", line.c_str());
    std::printf("saved %s (%d frames, %.0f ms)\n", o.screenshot.c_str(), o.frames, ms_since(start));
    return 0;
}

void glfw_error(int code, const char* what) { std::fprintf(stderr, "moelab: GLFW error %d: %s\n", code, what); }

// Input, routed to Dear ImGui's GLFW backend by hand (installed with install_callbacks =
// false). Two reasons: the loop sleeps until something happens, so it must know input arrived;
// and 1.86's backend keeps only "is the key down now", so a key pressed and released between two
// frames (a quick tap, xdotool, a slow frame on a busy laptop) was never seen. Such a release is
// held back until a frame has seen the key down, and every key or character that comes after a
// held release waits behind it, in order: Ctrl+A then fast typing used to hand the typed
// characters to a frame that still saw Ctrl held, and Dear ImGui drops characters typed with
// Ctrl down (or reads a letter pressed then as Ctrl+letter: Ctrl+X, Ctrl+V).
bool g_input_seen = true;
struct InputEvent {
    enum Kind { Key, Char, MouseButton } kind = Key;
    int key = 0, scancode = 0, action = 0, mods = 0;  // a key (key, scancode) or a mouse button (key)
    unsigned int codepoint = 0;                       // a character
};
std::vector<int> g_pressed_since_frame;   // keys pressed since the last frame began
std::vector<int> g_released_since_frame;  // keys released since the last frame began
std::deque<InputEvent> g_waiting;        // events behind a held release, delivered after frames

void deliver(GLFWwindow* w, const InputEvent& e) {
    switch (e.kind) {
        case InputEvent::Char:
            if (!editor_takes_char(e.codepoint)) ImGui_ImplGlfw_CharCallback(w, e.codepoint);
            break;
        // The backend keeps a press for one frame itself; a click after typed text must still
        // come after the text (a Save button clicked while the path is being typed).
        case InputEvent::MouseButton: ImGui_ImplGlfw_MouseButtonCallback(w, e.key, e.action, e.mods); break;
        case InputEvent::Key:
            if (e.action == GLFW_PRESS) g_pressed_since_frame.push_back(e.key);
            if (e.action == GLFW_RELEASE) g_released_since_frame.push_back(e.key);
            ImGui_ImplGlfw_KeyCallback(w, e.key, e.scancode, e.action, e.mods);
            break;
    }
}
bool is_key_release(const InputEvent& e) { return e.kind == InputEvent::Key && e.action == GLFW_RELEASE; }
// A key release waits while any press is unseen: Ctrl+S released as Ctrl first must still reach
// the frame as Ctrl held with S. A press of a key released since the frame began waits too: the
// next frame would see the key still down and count no second press (BackSpace BackSpace).
bool waits_for_a_frame(const InputEvent& e) {
    if (is_key_release(e)) return !g_pressed_since_frame.empty();
    return e.kind == InputEvent::Key && e.action == GLFW_PRESS &&
           std::find(g_released_since_frame.begin(), g_released_since_frame.end(), e.key) != g_released_since_frame.end();
}
bool must_wait(const InputEvent& e) { return !g_waiting.empty() || waits_for_a_frame(e); }
void on_input(GLFWwindow* w, const InputEvent& e) {
    g_input_seen = true;
    if (must_wait(e)) g_waiting.push_back(e);
    else deliver(w, e);
}
void on_key(GLFWwindow* w, int key, int scancode, int action, int mods) {
    on_input(w, InputEvent{InputEvent::Key, key, scancode, action, mods, 0});
}
void on_char(GLFWwindow* w, unsigned int c) { on_input(w, InputEvent{InputEvent::Char, 0, 0, 0, 0, c}); }
void on_mouse_button(GLFWwindow* w, int button, int action, int mods) {
    on_input(w, InputEvent{InputEvent::MouseButton, button, 0, action, mods, 0});
}
// Called after each frame: its presses were seen, so what waited goes in, up to the next release
// that must wait for another frame (a typed character's own release: one character a frame).
void deliver_waiting_input(GLFWwindow* w) {
    g_pressed_since_frame.clear();
    g_released_since_frame.clear();
    bool delivered = false;
    while (!g_waiting.empty()) {
        const InputEvent e = g_waiting.front();
        if (waits_for_a_frame(e)) break;
        g_waiting.pop_front();
        deliver(w, e);
        delivered = true;
    }
    if (delivered || !g_waiting.empty()) g_input_seen = true;  // the next frame must run
}
void on_scroll(GLFWwindow* w, double dx, double dy) {
    g_input_seen = true;
    ImGui_ImplGlfw_ScrollCallback(w, dx, dy);
}
void on_focus(GLFWwindow* w, int focused) {
    g_input_seen = true;
    ImGui_ImplGlfw_WindowFocusCallback(w, focused);
}
void on_enter(GLFWwindow* w, int entered) {
    g_input_seen = true;
    ImGui_ImplGlfw_CursorEnterCallback(w, entered);
}
void on_cursor(GLFWwindow*, double, double) { g_input_seen = true; }  // the backend polls the position
std::string g_dropped;  // a folder dropped on the window, opened by the main loop
void on_drop(GLFWwindow*, int count, const char** paths) {
    if (count > 0 && paths[0]) g_dropped = paths[0];
    g_input_seen = true;
}
void on_refresh(GLFWwindow*) { g_input_seen = true; }
void on_resize(GLFWwindow*, int, int) { g_input_seen = true; }

// Saves settings a moment after they change (not mid-drag), so a crash or a killed session
// keeps them; compared by the text that would be written.
void save_settings_when_changed(App& app) {
    if (app.settings_path.empty() || ImGui::IsAnyItemActive()) return;
    const std::string now = settings_text(app.view, app.table, app.n_panels);
    if (now == app.saved_settings) {
        app.settings_dirty_since = -1;
        return;
    }
    if (app.settings_dirty_since < 0) app.settings_dirty_since = app.view.time_s;
    if (app.view.time_s - app.settings_dirty_since < 0.5 && !app.saved_settings.empty()) return;
    const std::string msg = save_settings(app.settings_path, app.view, app.table, app.n_panels);
    if (!msg.empty()) {
        app.view.status = msg;
        g_input_seen = true;  // a frame to show it: this runs after the frame, which may be the last for a while
    }
    app.saved_settings = now;
    app.settings_dirty_since = -1;
}

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
    if (!opt.dump_layout.empty()) dump::enable(opt.dump_layout);

    // A bad --model is fatal for a screenshot (a script asked for that model); in the window the
    // teacher sees why in the status bar and works with the built-in model.
    std::unique_ptr<Session>& session = app.owned_session;
    struct RandomFile {
        std::string path;
        ~RandomFile() { remove_random_model(path); }
    } random_file;
    try {
        if (!opt.random_model.empty()) opt.model = random_file.path = write_random_model(opt.random_model);
        session = std::make_unique<Session>(opt.model);
    } catch (const Error& e) {
        std::fprintf(stderr, "moelab: %s\n", e.what());
        if (app.screenshot_mode || opt.model.empty()) return 2;
        app.startup_problem = std::string("The model could not be opened, so the built-in model runs instead: ") +
                              e.what() + "   (Esc hides this)";
        try {
            session = std::make_unique<Session>(std::string());
        } catch (const Error& e2) {
            std::fprintf(stderr, "moelab: %s\n", e2.what());
            return 2;
        }
    }
    app.session = session.get();
    app.view.knobs = session->default_knobs();
    app.view.text_input = kDefaultText;

    // Screenshots use the defaults: they neither read nor write the user's settings.
    static std::string ini_path;
    bool first_run = false;
    if (!app.screenshot_mode) {
        const std::string dir = config_dir();
        if (!dir.empty()) {
            ini_path = dir + "/imgui.ini";
            app.settings_path = dir + "/settings.json";
        }
        if (!opt.settings.empty()) app.settings_path = opt.settings;
        if (!app.settings_path.empty()) {
            first_run = !std::filesystem::exists(app.settings_path);
            app.view.status = load_settings(app.settings_path, app.view, app.table, app.n_panels);
        }
    } else if (!opt.settings.empty()) {
        // Read only: a screenshot never writes settings.
        app.view.status = load_settings(opt.settings, app.view, app.table, app.n_panels);
        if (!app.view.status.empty()) std::fprintf(stderr, "moelab: %s\n", app.view.status.c_str());
    }
    // Settings may come from another model: the expert count is the loaded model's.
    app.view.knobs.router.n_experts = session->model().info().moe.n_experts;
    apply_options(opt, app.view);
    // First run: the getting-started card says what to press for the first "aha".
    const int getting_started = find_panel(app.table, app.n_panels, "Getting started");
    if (getting_started >= 0) app.table[getting_started].visible = first_run && opt.lesson.empty();

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
    ImGui_ImplGlfw_InitForOpenGL(app.window, false);
    ImGui_ImplOpenGL3_Init("#version 330 core");
    // Shaders compile once; one that does not is said once in the status bar, and its views
    // fall back to ImGui rectangles.
    if (const std::string msg = gl::init_shaders(); !msg.empty()) {
        std::fprintf(stderr, "moelab: %s\n", msg.c_str());
        if (app.view.status.empty()) app.view.status = msg;
    }
    glfwSetKeyCallback(app.window, on_key);
    glfwSetCharCallback(app.window, on_char);
    glfwSetMouseButtonCallback(app.window, on_mouse_button);
    glfwSetCursorPosCallback(app.window, on_cursor);
    glfwSetScrollCallback(app.window, on_scroll);
    glfwSetWindowFocusCallback(app.window, on_focus);
    glfwSetCursorEnterCallback(app.window, on_enter);
    glfwSetWindowRefreshCallback(app.window, on_refresh);
    glfwSetFramebufferSizeCallback(app.window, on_resize);
    glfwSetMonitorCallback(ImGui_ImplGlfw_MonitorCallback);
    glfwSetDropCallback(app.window, on_drop);
    ModelOpener opener(app.settings_path.empty()
                           ? std::string()
                           : (std::filesystem::path(app.settings_path).parent_path() / "recent_models.txt").string());
    app.opener = &opener;

    if (!opt.lesson.empty()) {
        PanelContext ctx{*app.session, *app.session->latest(), app.view};
        const std::string problem = open_lesson_file(opt.lesson, ctx);
        if (!problem.empty()) app.view.status = problem;
        const int lesson = find_panel(app.table, app.n_panels, "Lesson");
        if (lesson >= 0) app.table[lesson].visible = true;  // with the error, if the file was bad
        app.view.want_lesson_panel = false;
        if (app.screenshot_mode) load_lesson_model_now(app);  // a picture cannot wait for the thread
    }

    int rc = 0;
    if (app.screenshot_mode) {
        try {
            rc = run_screenshot(app, opt);
        } catch (const Error& e) {
            std::fprintf(stderr, "moelab --screenshot: %s\n", e.what());
            rc = 2;
        }
    } else {
        Clock::time_point last = Clock::now();
        // Dear ImGui needs a few frames after input: hover, popups and keyboard focus each take one.
        constexpr int kSettleFrames = 4;
        int settle_frames = kSettleFrames;
        app.saved_settings = settings_text(app.view, app.table, app.n_panels);
        while (!glfwWindowShouldClose(app.window) && !app.want_quit) {
            // Render only when something changed: input, a new result, playback or an animation
            // (bounded: the arcs grow for 0.4 s) or a panel training live (until paused or done).
            // Idle, the loop sleeps in glfwWaitEventsTimeout.
            // Settings waiting for their quiet time count too: idle, no frame would come to save them.
            const bool moving = app.view.playing || app.view.anim_t < 1.0f || app.view.keep_rendering ||
                                app.settings_dirty_since >= 0;
            auto engine_news = [&] {
                return session->busy() || session->latest()->generation != app.shown_generation || opener.loading();
            };
            // At most 60 frames a second even where vsync does not hold the swap (Xvfb, some
            // drivers): input still wakes the loop at once.
            const double since_last = std::chrono::duration<double>(Clock::now() - last).count();
            if (moving || settle_frames > 0 || engine_news()) glfwWaitEventsTimeout(std::max(0.0, 1.0 / 60.0 - since_last));
            else glfwWaitEventsTimeout(0.25);  // wakes now and then: the engine has no GLFW handle
            if (g_input_seen) settle_frames = kSettleFrames;
            g_input_seen = false;
            if (!(moving || settle_frames > 0 || engine_news())) continue;
            if (settle_frames > 0) --settle_frames;
            if (!g_dropped.empty()) {
                opener.start(g_dropped);
                g_dropped.clear();
            }
            if (std::unique_ptr<Session> fresh = opener.take_ready()) {
                // The loaded model replaces the old one, with its own trained routing as the knobs.
                const std::string name = fresh->model().info().name;
                run_session(app, std::move(fresh), name);
                app.view.knobs = app.session->default_knobs();
                app.view.layer = 0;
            }
            const Clock::time_point now = Clock::now();
            const double dt = std::min(0.25, std::chrono::duration<double>(now - last).count());
            last = now;
            std::shared_ptr<const Snapshot> shown = frame(app, dt);
            deliver_waiting_input(app.window);
            if (!app.view.open_model_path.empty()) {
                open_model(app, app.view.open_model_path);
                app.view.open_model_path.clear();
            }
            // A lesson's model: loaded off the UI thread; a failure is told in the lesson column.
            if (!app.view.lesson_model_load.empty()) {
                opener.start_for_lesson(app.view.lesson_model_load);
                app.view.lesson_model_load.clear();
            }
            if (std::string failed = opener.take_lesson_failure(); !failed.empty()) app.view.lesson_model_error = failed;
            if (app.view.want_lesson_panel) {
                app.view.want_lesson_panel = false;
                for (const char* label : {"Lesson", "Getting started"}) {
                    const int id = find_panel(app.table, app.n_panels, label);
                    if (id >= 0) app.table[id].visible = label[0] == 'L';
                }
            }
            glfwSwapBuffers(app.window);
            app.history.observe(App::KnobState{app.view.knobs, app.view.layer});
            save_settings_when_changed(app);
            if (dump::enabled()) dump::end_frame(frame_state(app, *shown));
        }
        if (!app.settings_path.empty()) {
            const std::string msg = save_settings(app.settings_path, app.view, app.table, app.n_panels);
            if (!msg.empty()) std::fprintf(stderr, "moelab: %s\n", msg.c_str());
        }
    }

    gl::shutdown_shaders();
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
