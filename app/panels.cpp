// THE table of panels (STYLE.md §7, Hello ImGui's `{label, visible, gui_function}`). The layout
// in main.cpp places panels by these labels; the View menu lists them in this order.
#include "app/panels.h"
#include "app/panels_lab.h"

namespace moe::app {

Panel* panels(int* count) {
    static Panel table[] = {
        {"Controls", true, draw_controls},
        {"Text", true, draw_text_input},
        {"Tokens", true, draw_token_strip},
        {"Router", true, draw_router},
        {"Expert load", true, draw_load_bars},
        {"Next byte", true, draw_prediction},
        {"Gate heatmap", true, draw_heatmap},
        {"Parameters and FLOPs", true, draw_counters},
        // Teaching panels (panels_lab.h): the lesson takes a column of the grid when shown; the
        // others float over it, opened from the menus.
        {"Lesson", false, draw_lesson},
        {"Training lab", false, draw_training_lab},
        {"Systems", false, draw_systems},
        {"Getting started", false, draw_getting_started},
        {"Model overview", false, draw_overview},  // every layer at once; a tab beside the heatmap (layout.h)
    };
    *count = static_cast<int>(sizeof(table) / sizeof(table[0]));
    return table;
}

}  // namespace moe::app
