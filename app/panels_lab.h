// The teaching panels: lessons from scenarios/, the training lab (2D mixture and a live LM
// fine-tune on a copy of the model) and the systems view (expert parallelism, memory vs
// compute). Each keeps its UI state in a file-local struct: there is one window, so one state.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "app/panels.h"
#include "core/teach/plot.h"

namespace moe::app {

void draw_lesson(PanelContext& ctx);        // pick a lesson, step through it, knobs applied live
void draw_training_lab(PanelContext& ctx);  // mix2d trains live; LM fine-tune on a copy
void draw_systems(PanelContext& ctx);       // expert-parallel traffic, memory vs compute, exports
void draw_getting_started(PanelContext& ctx);  // the first minute: what to press, where to look

// Opens a lesson file at its first step (File > Open lesson, --lesson); "" or the error.
std::string open_lesson_file(const std::string& path, PanelContext& ctx);
// The lessons found in scenarios/ (titles; their files into *files when given).
const std::vector<std::string>& lesson_titles(std::vector<std::string>* files);
// "none" or "<file>:<step>/<steps>", for --dump-layout.
std::string lesson_state();

// The export folder shared by the panels' export buttons (default ~/moelab-exports) and a row of
// "PNG / SVG / CSV" buttons for one plot; the result or the error goes to `status`.
std::string& export_folder();
// Plot and CSV are built only when a button is pressed.
void export_buttons(const char* id, const char* stem, const std::function<Plot()>& plot,
                    const std::function<std::string()>& csv, std::string& status);
void export_folder_field();

}  // namespace moe::app
