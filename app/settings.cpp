// Settings persistence (settings.h). Reads into a copy and commits only when the whole file is
// valid, so a half-corrupt file cannot leave the app in a mixed state.
#include "app/settings.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "core/io/file_io.h"

namespace moe::app {

namespace fs = std::filesystem;
using nlohmann::json;

std::string config_dir() {
    fs::path dir;
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        dir = fs::path(xdg) / "moelab";
    else if (const char* home = std::getenv("HOME"); home && *home)
        dir = fs::path(home) / ".config" / "moelab";
    else
        return {};
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return {};
    return dir.string();
}

namespace {

// Typed field access that names the file and key on any mismatch.
template <typename T>
void read(const json& j, const char* key, T& out, const std::string& path) {
    if (!j.contains(key)) return;  // missing keys keep their defaults (older files)
    try {
        out = j.at(key).get<T>();
    } catch (const json::exception&) {
        throw Error(path, key, "has the wrong type: " + j.at(key).dump(), "delete the file to reset");
    }
}

template <typename E>
void read_enum(const json& j, const char* key, E& out, int n_values, const std::string& path) {
    int v = static_cast<int>(out);
    read(j, key, v, path);
    if (v < 0 || v >= n_values)
        throw Error(path, key, "is " + std::to_string(v),
                    "expected 0.." + std::to_string(n_values - 1));
    out = static_cast<E>(v);
}

// The routing knobs, shared by settings.json and session files.
void read_knobs(const json& j, const std::string& path, ViewState& v) {
    if (!j.contains("knobs")) return;
    const json& k = j.at("knobs");
    if (!k.is_object()) throw Error(path, "knobs", "is not an object", "delete the file to reset");
    RouterConfig& r = v.knobs.router;
    read_enum(k, "scheme", r.scheme, kNumSchemes, path);
    read(k, "k", r.k, path);
    read(k, "capacity_factor", r.capacity_factor, path);
    read_enum(k, "drop_policy", r.drop_policy, 3, path);
    read(k, "renormalize", r.renormalize, path);
    read(k, "add_noise", r.add_noise, path);
    read(k, "noise_scale", r.noise_scale, path);
    read(k, "jitter_eps", r.jitter_eps, path);
    read(k, "n_groups", r.n_groups, path);
    read(k, "topk_groups", r.topk_groups, path);
    read(k, "routed_scaling", r.routed_scaling, path);
    read(k, "sinkhorn_iters", r.sinkhorn_iters, path);
    read(k, "bias_update_rate", r.bias_update_rate, path);
    read(k, "seed", r.seed, path);
    read(k, "shared_experts", v.knobs.shared_experts, path);
    // The device is not restored: a GPU present last time may be gone now.
}

json knobs_json(const ViewState& view) {
    const RouterConfig& r = view.knobs.router;
    return {{"scheme", static_cast<int>(r.scheme)},
            {"k", r.k},
            {"capacity_factor", r.capacity_factor},
            {"drop_policy", static_cast<int>(r.drop_policy)},
            {"renormalize", r.renormalize},
            {"add_noise", r.add_noise},
            {"noise_scale", r.noise_scale},
            {"jitter_eps", r.jitter_eps},
            {"n_groups", r.n_groups},
            {"topk_groups", r.topk_groups},
            {"routed_scaling", r.routed_scaling},
            {"sinkhorn_iters", r.sinkhorn_iters},
            {"bias_update_rate", r.bias_update_rate},
            {"seed", r.seed},
            {"shared_experts", view.knobs.shared_experts}};
}

json parse_object(const std::string& path, std::ifstream& in) {
    std::stringstream ss;
    ss << in.rdbuf();
    json j;
    try {
        j = json::parse(ss.str());
    } catch (const json::parse_error& e) {
        throw Error(path, "json", std::string("does not parse: ") + e.what(), "delete the file to reset");
    }
    if (!j.is_object()) throw Error(path, "json", "is not an object", "delete the file to reset");
    return j;
}

// Atomic: a crash mid-write leaves the old file. The text may hold any bytes; dump replaces
// invalid UTF-8 rather than throwing.
std::string write_json(const std::string& path, const json& j, const char* what) {
    const std::string body = j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    try {
        write_file_atomic(path, body);
    } catch (const std::exception& e) {
        return std::string(what) + " not saved: " + e.what();
    }
    return {};
}

}  // namespace

std::string load_settings(const std::string& path, ViewState& view, Panel* panels, int n_panels) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))  // an ifstream opens a folder and reads nothing
        return "settings ignored: " + path + " is a folder, not a settings file (remove it to keep settings)";
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    ViewState v = view;
    std::vector<bool> visible(static_cast<size_t>(n_panels));
    for (int i = 0; i < n_panels; ++i) visible[static_cast<size_t>(i)] = panels[i].visible;
    try {
        const json j = parse_object(path, in);
        read(j, "presenter", v.presenter, path);
        read(j, "user_zoom", v.user_zoom, path);
        if (!(v.user_zoom >= kMinZoom && v.user_zoom <= kMaxZoom))
            throw Error(path, "user_zoom", std::to_string(v.user_zoom),
                        "expected " + std::to_string(kMinZoom) + ".." + std::to_string(kMaxZoom));
        if (v.presenter && !j.contains("show_controls")) v.show_controls = false;  // presenter folds them
        read(j, "show_controls", v.show_controls, path);
        read(j, "text", v.text_input, path);
        read(j, "layer", v.layer, path);
        read(j, "play_speed", v.play_speed, path);
        if (!(v.play_speed > 0.0f && v.play_speed <= 100.0f))
            throw Error(path, "play_speed", std::to_string(v.play_speed), "expected 0..100 tokens/s");
        read(j, "cumulative_load", v.cumulative_load, path);
        read(j, "heatmap_first_column", v.heat_first_col, path);
        read(j, "heatmap_columns", v.heat_n_cols, path);
        // Any count is drawn (the heatmap clamps to the model's experts); a negative one is a typo.
        if (v.heat_first_col < 0 || v.heat_n_cols < 0)
            throw Error(path, v.heat_first_col < 0 ? "heatmap_first_column" : "heatmap_columns",
                        std::to_string(std::min(v.heat_first_col, v.heat_n_cols)), "expected >= 0 (0 columns: all experts)");
        read_knobs(j, path, v);
        if (j.contains("panels")) {
            const json& p = j.at("panels");
            if (!p.is_object()) throw Error(path, "panels", "is not an object", "delete the file to reset");
            for (int i = 0; i < n_panels; ++i) {
                if (!p.contains(panels[i].label)) continue;
                bool b = visible[static_cast<size_t>(i)];
                read(p, panels[i].label, b, path);
                visible[static_cast<size_t>(i)] = b;
            }
        }
    } catch (const Error& e) {
        return std::string("settings ignored: ") + e.what();
    } catch (const std::exception& e) {
        return path + ": settings ignored: " + e.what();
    }
    view = std::move(v);
    for (int i = 0; i < n_panels; ++i) panels[i].visible = visible[static_cast<size_t>(i)];
    return {};
}

namespace {
json settings_json(const ViewState& view, const Panel* panels, int n_panels) {
    json p = json::object();
    for (int i = 0; i < n_panels; ++i) p[panels[i].label] = panels[i].visible;
    const json j = {{"presenter", view.presenter},   {"user_zoom", view.user_zoom},
                    {"show_controls", view.show_controls}, {"text", view.text_input},
                    {"layer", view.layer},           {"play_speed", view.play_speed},
                    {"cumulative_load", view.cumulative_load}, {"heatmap_first_column", view.heat_first_col},
                    {"heatmap_columns", view.heat_n_cols},     {"knobs", knobs_json(view)}, {"panels", p}};
    return j;
}
}  // namespace

std::string settings_text(const ViewState& view, const Panel* panels, int n_panels) {
    return settings_json(view, panels, n_panels).dump(2, ' ', false, json::error_handler_t::replace);
}

std::string save_settings(const std::string& path, const ViewState& view, const Panel* panels,
                          int n_panels) {
    return write_json(path, settings_json(view, panels, n_panels), "settings");  // the error names the path
}

std::string save_session_file(const std::string& path, const ViewState& view) {
    const json j = {{"moelab_session", 1}, {"text", view.text_input}, {"layer", view.layer},
                    {"token", view.cursor}, {"knobs", knobs_json(view)}};
    return write_json(path, j, "session");
}

std::string load_session_file(const std::string& path, ViewState& view) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return path + ": cannot be read (missing or not a file)";
    ViewState v = view;
    try {
        const json j = parse_object(path, in);
        if (!j.contains("moelab_session"))
            throw Error(path, "moelab_session", "is missing", "this is not a session saved by File > Save session");
        read(j, "text", v.text_input, path);
        read(j, "layer", v.layer, path);
        read(j, "token", v.cursor, path);
        read_knobs(j, path, v);
    } catch (const std::exception& e) {
        return std::string("session not loaded: ") + e.what();
    }
    view = std::move(v);
    return {};
}

}  // namespace moe::app
