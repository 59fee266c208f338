// Where the panels go: a grid computed from the window size every frame (Dear ImGui 1.86 has no
// docking). Presenter mode lays itself out for the window it has: below 1920x1080 it keeps the
// token strip, the router and the load bars large and folds the other grid panels into tabs.
// A visible lesson (else the getting-started card) takes its own column on the right, so it never
// covers the panel it points at.
// The whole-model overview shares the heatmap's slot as a tab (folded with the others in
// presenter mode). On a wide enough window the load bars get the router row's full height.
#pragma once

#include <vector>

#include "app/panels.h"

namespace moe::app {

struct Rect {
    float x = 0, y = 0, w = 0, h = 0;
    bool empty() const { return w <= 0 || h <= 0; }
};

struct Layout {
    std::vector<Rect> rects;   // (n_panels) where each panel goes; empty: not in the grid
    Rect tabs;                 // the host window of the folded panels; empty: nothing folded
    std::vector<int> tabbed;   // panels drawn as tabs inside `tabs`, left to right
};

// True when presenter mode folds panels into tabs at this window size (in pixels).
bool presenter_folds(float width, float height);

// `scale` is the font scale in use (minimum sizes follow it). `show_controls` false folds the
// controls column away (presenter mode does); `fold`: tabs for the secondary panels (presenter
// mode on a small window). Panels are found by their labels in `table`.
Layout compute_layout(const Rect& area, float scale, bool show_controls, bool fold, const Panel* table,
                      int n_panels);

// The index of the panel labelled `label`, or -1.
int find_panel(const Panel* table, int n_panels, const char* label);

}  // namespace moe::app
