// Script fonts: the text people type (and the tokens a real tokenizer makes of it) has CJK,
// emoji and symbols DejaVu does not draw. The glyphs the current text needs, and only those,
// are merged into every ImGui font from Debian's font packages (fonts-noto-cjk, fonts-symbola),
// so the atlas stays small: a Chinese sentence adds a few dozen glyphs, not 40,000.
//
// Debian's Dear ImGui is built with 16-bit ImWchar, so code points past U+FFFF (emoji) cannot
// be glyphs of their own: each one gets a private-use stand-in (U+F0000 -> U+E000...) whose
// glyph is painted from Symbola into the atlas; screen_text() swaps them in before drawing.
//
// [SECTION] What the text needs
// [SECTION] Building the atlas (theme.cpp's load_fonts)
// [SECTION] Drawing
#pragma once

#include <imgui.h>

#include <string>
#include <string_view>

namespace moe::app {

// [SECTION] What the text needs

// Notes every code point of `utf8` that the atlas lacks. Cheap when nothing is new.
void want_glyphs(std::string_view utf8);
// True when want_glyphs() saw a code point that a font package has and the atlas does not:
// the fonts must be rebuilt (main.cpp, between frames).
bool glyphs_changed();

// [SECTION] Building the atlas

// Right after adding a base font of `size_px` from `base_path`: merges into it the CJK and
// symbol glyphs wanted so far (BMP) and queues the astral ones as custom glyphs.
void merge_script_fonts(ImFont* font, const char* base_path, float size_px);
// After the last font: builds the atlas and paints the astral glyphs into it.
void finish_font_atlas();

// How many glyphs came from the script fonts, and the packages that are missing (for the status
// bar and tests): "" when all are installed.
int script_glyph_count();
std::string missing_font_packages();

// [SECTION] Drawing

// `utf8` with its astral code points (emoji) replaced by their private-use stand-ins, for
// ImGui's text functions; also notes the text's glyphs (want_glyphs).
std::string screen_text(std::string_view utf8);
// How many characters of `screen` (a screen_text() result) `font` would draw as its '?'.
int missing_glyphs(const ImFont* font, std::string_view screen);

}  // namespace moe::app
