// The panels of the moelab window, listed in one table (panels.cpp). Each panel is a plain
// function of (snapshot, session, view state) in its own file under app/panels/ (STYLE.md §7).
// A panel draws inside an ImGui window that the table's caller has already begun.
#pragma once

#include "app/view_state.h"
#include "core/session.h"

namespace moe::app {

struct PanelContext {
    Session& session;
    const Snapshot& snap;   // the latest snapshot, held for the whole frame
    ViewState& view;
};

struct Panel {
    const char* label;     // window title, unique
    bool visible;          // default visibility (persisted in the ini)
    void (*draw)(PanelContext& ctx);
};

// The table. Order = default docking/layout order.
Panel* panels(int* count);

void draw_controls(PanelContext& ctx);     // K, scheme, capacity, drop policy, noise, jitter, shared, bias, seed, layer, device
void draw_text_input(PanelContext& ctx);   // the text box and what is routed
// A typed character Dear ImGui's 16-bit editor would drop or turn into U+FFFD (an emoji): true
// when the text box has the keyboard and takes it itself (main.cpp's input routing).
bool editor_takes_char(unsigned int cp);
void draw_token_strip(PanelContext& ctx);  // tokens, current highlighted, dropped marked, playback buttons
void draw_router(PanelContext& ctx);       // current token -> router -> arcs to K experts with gate labels
void draw_load_bars(PanelContext& ctx);    // per-expert load, capacity line, overflow in red, CV, max/mean
void draw_heatmap(PanelContext& ctx);      // tokens x experts gate probabilities, chosen/dropped marked
void draw_counters(PanelContext& ctx);     // total vs active params, FLOPs/token, memory; famous-model gallery
void draw_prediction(PanelContext& ctx);   // top next-byte candidates with probabilities
void draw_overview(PanelContext& ctx);     // layers x experts load, tokens x layers top-1; click selects everywhere

}  // namespace moe::app
