// What persists between runs: the presenter flag, zoom, knobs, text and which panels are shown,
// in settings.json beside imgui.ini in the XDG config dir (~/.config/moelab/).
#pragma once

#include <string>

#include "app/panels.h"
#include "app/view_state.h"

namespace moe::app {

// $XDG_CONFIG_HOME/moelab, else $HOME/.config/moelab; created if missing. Empty when neither
// variable is set or the folder cannot be made (then nothing persists).
std::string config_dir();

// Reads `path` into view and the panel table. A missing file is not an error (first run) and
// returns ""; a corrupt one leaves the defaults and returns a status message naming the file,
// the field and the problem. Never throws.
std::string load_settings(const std::string& path, ViewState& view, Panel* panels, int n_panels);

// What save_settings writes, to tell whether anything changed.
std::string settings_text(const ViewState& view, const Panel* panels, int n_panels);

// Writes atomically (temp file + rename). Returns "" or a status message; never throws.
std::string save_settings(const std::string& path, const ViewState& view, const Panel* panels,
                          int n_panels);

// A session file (File > Save session / Open session): the text, the knobs, the layer and the
// token, so a class can be picked up where it was left. Both return "" or a message naming the
// file and the problem; loading a bad file changes nothing. Never throw.
std::string save_session_file(const std::string& path, const ViewState& view);
std::string load_session_file(const std::string& path, ViewState& view);

}  // namespace moe::app
