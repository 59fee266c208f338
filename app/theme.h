// Look and feel shared by every panel: one colour per expert (colour-blind-safe, used
// everywhere), the teaching tooltip helper, presenter-mode sizes.
#pragma once

#include <imgui.h>

#include "core/teach/palette.h"

namespace moe::app {

// Colour of expert e out of n_experts: Okabe-Ito for the first 8, then further hues that stay
// distinguishable under the common colour-vision deficiencies. Same expert, same colour, in
// every panel.
ImU32 expert_color(int expert, float alpha = 1.0f);
ImVec4 expert_color_vec(int expert, float alpha = 1.0f);

// Reserved colours, never an expert's (core/teach/palette.h says why): the app and the exporters agree.
constexpr ImU32 to_imu32(Rgba c) { return IM_COL32(c.r, c.g, c.b, c.a); }
inline constexpr ImU32 kColorDropped = to_imu32(::moe::kColorDropped);  // pure red: overflow / dropped
inline constexpr ImU32 kColorShared = to_imu32(::moe::kColorShared);    // near-white: shared, always on
inline constexpr ImU32 kColorIdle = IM_COL32(70, 70, 78, 255);      // unchosen expert

// The one way to attach a teaching sentence to the last item: a (?) marker or hover text.
void teach(const char* text);
// The same sentence on hover of the last item only, without the marker: for tight rows where a
// "(?)" after every number would push them off the panel.
void teach_hover(const char* text);

// Fonts: regular and large (presenter mode) DejaVu Sans from Debian's fonts-dejavu-core,
// loaded at the given scale; falls back to ImGui's default font with a status message.
void load_fonts(float scale);
ImFont* font_large();   // headlines and the lesson narrative
ImFont* font_mono();    // token strip

void apply_style(bool presenter, float scale);

}  // namespace moe::app
