// UI-only state of the moelab window, in one plain struct (STYLE.md §2). Model state lives in
// moe::Session; panels read its snapshot and change only this, or call session commands.
#pragma once

#include <string>

#include "core/session.h"

namespace moe::app {

struct ViewState {
    // What the user is editing; pushed to the session when it changes.
    std::string text_input;
    SessionKnobs knobs;
    int layer = 0;                 // which MoE layer the router/heatmap/load views show (index into traces)

    // Playback over the routed tokens.
    int cursor = 0;                // current token index
    bool playing = false;
    float play_speed = 4.0f;       // tokens per second
    double play_accum = 0.0;       // seconds accumulated toward the next step

    // Animation clock: 0 -> 1 as the current token's arcs grow; restarted on cursor/knob change.
    float anim_t = 1.0f;
    double time_s = 0.0;           // seconds since start (for pulses)

    // Presentation.
    bool presenter = false;        // large fonts, high contrast, controls collapsed
    float ui_scale = 1.0f;         // DPI x user zoom
    float user_zoom = 1.0f;        // Ctrl+= / Ctrl+-, persisted; kMinZoom..kMaxZoom
    bool show_controls = true;
    bool fullscreen = false;
    bool cumulative_load = false;  // load bars: this batch or cumulative since reset
    bool sort_load = false;        // load bars: busiest expert first (offered past 16 experts)
    int selected_expert = -1;      // picked in the overview; marked in every view (-1: none)
    // Heatmap zoom: the expert columns shown, heat_first_col .. + heat_n_cols - 1 (0: all). At 256
    // experts a full-width column is 2 px; Ctrl+wheel over the heatmap zooms, Shift+wheel pans.
    int heat_first_col = 0;
    int heat_n_cols = 0;

    // Status line: `status` for problems (errors from files, refused values; shown, never
    // fatal), `info` for news (where a file was written). The session's own error is shown once,
    // in the status bar, from the snapshot.
    std::string status;
    std::string info;

    // What the lesson step points at (empty: nothing): the panel is outlined, the token and
    // expert named.
    std::string look_at_panel;
    int look_at_token = -1;
    int look_at_expert = -1;
    bool want_lesson_panel = false;  // a lesson was opened from outside its panel: show it
    bool keep_rendering = false;     // a panel trains or measures live: the loop must not sleep (reset every frame)
    std::string open_model_path;     // non-empty: the frame loop opens this model in a new session ("builtin" = shipped)
    std::string lesson_model_load;   // non-empty: the lesson panel asks for this model, loaded off the UI thread (ModelOpener)
    std::string lesson_model_error;  // why the lesson's model did not load (main.cpp fills it, the lesson panel shows it)

    // Timing shown in the status bar and printed by --timing.
    double frame_ms = 0.0;         // CPU time to build and render the last frame
    double knob_to_view_ms = 0.0;  // last request (set_knobs/set_text) -> its snapshot on screen
};

inline bool same_router(const RouterConfig& a, const RouterConfig& b) {
    return a.scheme == b.scheme && a.n_experts == b.n_experts && a.k == b.k &&
           a.capacity_factor == b.capacity_factor && a.drop_policy == b.drop_policy &&
           a.renormalize == b.renormalize && a.add_noise == b.add_noise && a.noise_scale == b.noise_scale &&
           a.jitter_eps == b.jitter_eps && a.n_groups == b.n_groups && a.topk_groups == b.topk_groups &&
           a.routed_scaling == b.routed_scaling && a.sinkhorn_iters == b.sinkhorn_iters &&
           a.bias_update_rate == b.bias_update_rate && a.seed == b.seed;
}

inline bool same_knobs(const SessionKnobs& a, const SessionKnobs& b) {
    return same_router(a.router, b.router) && a.shared_experts == b.shared_experts && a.device == b.device;
}

inline constexpr float kMinZoom = 0.5f;
inline constexpr float kMaxZoom = 3.0f;

}  // namespace moe::app
