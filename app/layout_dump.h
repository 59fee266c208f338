// The app reporting its own frame (`moelab --dump-layout FILE`), for tests that drive the real
// window with real input (tests/e2e/): where each panel and each named widget is on screen (so a
// test can click it), what did not fit (text cut at a panel's edge, a combo too narrow for its
// choice), and what the frame showed (K, scheme, token count, lesson step). The file is rewritten
// atomically after every frame whose report changed; the state line carries the wall-clock time
// of the first frame that showed it, so a test can measure key press -> changed frame.
//
// Recording costs a few string appends per frame and is off unless --dump-layout is given.
#pragma once

#include <string>

namespace moe::app::dump {

bool enabled();
void enable(const std::string& path);

// Called by the frame loop.
void begin_frame();
// Writes the report when it differs from the last one written; `state` is one line of
// "key=value" pairs describing what this frame showed.
void end_frame(const std::string& state);

// The last ImGui item's rectangle, under `name` ("scheme combo", "menu File", ...).
void item(const std::string& name);
// A panel's rectangle and whether its content ran past its right or bottom edge.
void panel(const std::string& label, float x, float y, float w, float h, bool cut_right, bool cut_bottom);
// Something drawn narrower than it needed: `what` names it, `need` and `have` are pixel widths.
void clipped(const std::string& what, float need, float have);

// A message the status bar shows, so a failing test can print why.
void message(const std::string& text);
// Something a panel knows about what it drew that a test checks ("text box": its lines, the
// widest against the room, sideways scroll): a line `fact "NAME" VALUE`.
void fact(const std::string& name, const std::string& value);

// ImGui: true when `text` fits `width` pixels at the current font; records it as clipped if not.
bool text_fits(const char* what, const char* text, float width);

// Calls panel() for the current ImGui window (between Begin and End): its rectangle and whether
// the items drawn so far reach past its right edge (cut text) or its bottom edge.
void current_window(const std::string& label);

}  // namespace moe::app::dump
