// The teaching panels: lessons from scenarios/, the training lab (2D mixture and a live LM
// fine-tune on a copy of the model) and the systems view (expert parallelism, memory vs
// compute). Each keeps its UI state in a file-local struct: there is one window, so one state.
#pragma once

#include <functional>
#include <string>

#include "app/panels.h"
#include "core/teach/plot.h"

namespace moe::app {

void draw_lesson(PanelContext& ctx);        // pick a lesson, step through it, knobs applied live
void draw_training_lab(PanelContext& ctx);  // mix2d trains live; LM fine-tune on a copy
void draw_systems(PanelContext& ctx);       // expert-parallel traffic, memory vs compute, exports

// The export folder shared by the panels' export buttons (default ~/moelab-exports) and a row of
// "PNG / SVG / CSV" buttons for one plot; the result or the error goes to `status`.
std::string& export_folder();
// Plot and CSV are built only when a button is pressed.
void export_buttons(const char* id, const char* stem, const std::function<Plot()>& plot,
                    const std::function<std::string()>& csv, std::string& status);
void export_folder_field();

}  // namespace moe::app
