// The expert palette, shared by the app and the exporters so that expert 3 has the same colour
// on screen, in a PNG and in an SVG. Okabe-Ito (colour-blind-safe) for the first 8 experts, then
// further hues spaced by the golden angle so that neighbouring experts stay distinct.
// Two colours are reserved and no expert ever gets them, so a colour is never ambiguous:
// pure red = dropped / overflow (always drawn with a cross, hatch or dash as well, for
// colour-blind readers), near-white = shared expert (always labelled "shared").
#pragma once

#include <cmath>
#include <cstdint>

namespace moe {

struct Rgba {
    uint8_t r = 0, g = 0, b = 0, a = 255;
    friend bool operator==(const Rgba&, const Rgba&) = default;
};

// Okabe & Ito (2008), "Color Universal Design", in the order that keeps the first colours most
// distinct; their black is replaced by a grey so that it shows on dark and light backgrounds.
inline constexpr Rgba kOkabeIto[8] = {
    {230, 159, 0, 255},    // orange
    {86, 180, 233, 255},   // sky blue
    {0, 158, 115, 255},    // bluish green
    {240, 228, 66, 255},   // yellow
    {0, 114, 178, 255},    // blue
    {213, 94, 0, 255},     // vermillion
    {204, 121, 167, 255},  // reddish purple
    {153, 153, 153, 255},  // grey
};

// Pure red: further from vermillion (expert 5, hue 26 deg) than any other red, and experts 8+
// keep their hues out of the band around it (expert_color below).
inline constexpr Rgba kColorDropped = {255, 0, 0, 255};      // pure red: overflow / dropped pairs
inline constexpr Rgba kColorCapacity = {200, 30, 30, 255};   // the capacity line
// No expert is a light neutral (the only neutral expert, 7, is a mid grey at 153).
inline constexpr Rgba kColorShared = {235, 235, 240, 255};   // near-white: shared experts, always on

// Colour of expert `expert` (any index >= 0): Okabe-Ito for 0..7, then golden-angle hues at two
// lightness levels (HSL, saturation 0.65) for 8 and above, squeezed into hues 40..330 deg so
// that no expert looks like the dropped red.
inline Rgba expert_color(int expert) {
    if (expert < 0) expert = 0;
    if (expert < 8) return kOkabeIto[expert];
    const int j = expert - 8;
    const double spread = std::fmod(20.0 + 137.50776405 * j, 360.0);  // golden-angle walk
    const double hue = (40.0 + spread * (290.0 / 360.0)) / 360.0;
    const double light = (j % 2 == 0) ? 0.55 : 0.40;
    const double sat = 0.65;
    // HSL -> RGB
    const double q = light < 0.5 ? light * (1 + sat) : light + sat - light * sat;
    const double p = 2 * light - q;
    auto channel = [&](double t) {
        if (t < 0) t += 1;
        if (t > 1) t -= 1;
        double v = p;
        if (t < 1.0 / 6) v = p + (q - p) * 6 * t;
        else if (t < 0.5) v = q;
        else if (t < 2.0 / 3) v = p + (q - p) * (2.0 / 3 - t) * 6;
        return static_cast<uint8_t>(std::lround(v * 255.0));
    };
    return {channel(hue + 1.0 / 3), channel(hue), channel(hue - 1.0 / 3), 255};
}

}  // namespace moe
