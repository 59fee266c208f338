// A small plot description and two renderers for it: SVG (vector, text as <text>) and PNG (a
// software rasteriser into an RGBA buffer, anti-aliased lines, DejaVu Sans text through
// stb_truetype). No display, no GPU: this is how moelab exports "what the screen shows".
//
// A Plot is plain data: bars (each a segment [y0, y1] at a position, so stacked overflow is just a
// second segment), horizontal reference lines (the capacity), line series, heatmap cells with
// marks, free text labels, a legend. layout_plot() turns it into pixel-space primitives once;
// both renderers draw the same primitives, so the PNG and the SVG show the same picture.
//
// [SECTION] Plot description
// [SECTION] Primitives (layout)
// [SECTION] Rendering
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/teach/palette.h"

namespace moe {

// [SECTION] Plot description
struct PlotBar {
    float x = 0;          // centre, in x data units (category i is centred at x = i)
    float width = 0.8f;   // in x data units
    float y0 = 0, y1 = 0; // the segment, in y data units
    Rgba color;
};

struct PlotHLine {
    float y = 0;
    Rgba color = kColorCapacity;
    bool dashed = true;
    std::string label;    // drawn at the right end, above the line
};

struct PlotLine {
    std::string name;     // legend entry when non-empty
    Rgba color;
    float width = 2.0f;   // pixels
    std::vector<float> xs, ys;  // (n_points) each
};

enum class CellMark : uint8_t { None = 0, Chosen, Dropped };

struct PlotHeatmap {
    int n_rows = 0, n_cols = 0;
    std::vector<float> values;        // (n_rows * n_cols) row-major, in [0, 1] (clamped for colour)
    std::vector<CellMark> marks;      // (n_rows * n_cols) or empty
    std::vector<std::string> row_labels;  // (n_rows) or empty
    std::vector<std::string> col_labels;  // (n_cols) or empty
    Rgba color = {0, 114, 178, 255};  // value 1 = this colour, 0 = white
};

struct PlotText {
    float x = 0, y = 0;   // data coordinates
    std::string text;
    Rgba color = {30, 30, 30, 255};
    float size = 12;      // pixels
};

struct LegendEntry {
    std::string name;
    Rgba color;
};

struct Plot {
    int width = 800, height = 480;  // pixels
    std::string title;
    std::string x_label, y_label;
    std::vector<std::string> x_categories;  // bar plots: label of category i at x = i
    // Axis ranges; when min >= max they are computed from the data (y always includes 0 for bars).
    float x_min = 0, x_max = 0, y_min = 0, y_max = 0;
    bool y_log = false;  // y on a log10 scale (values <= 0 are left out), ticks at powers of ten

    std::vector<PlotBar> bars;
    std::vector<PlotHLine> hlines;
    std::vector<PlotLine> lines;
    PlotHeatmap heatmap;             // used when n_rows > 0 (then axes/bars/lines are ignored)
    std::vector<PlotText> texts;
    std::vector<LegendEntry> legend;
};

// [SECTION] Primitives (layout)
struct Prim {
    enum Kind : uint8_t { Rect, Line, Polyline, Text } kind = Rect;
    float x = 0, y = 0, w = 0, h = 0;   // Rect: top-left corner and size; Line: (x, y) -> (w, h) as x1, y1
    std::vector<float> pts;             // Polyline: x0, y0, x1, y1, ...
    Rgba fill;                          // Rect fill, Line/Polyline/Text colour
    Rgba stroke = {0, 0, 0, 0};         // Rect outline (alpha 0 = none)
    float line_width = 1;
    bool dashed = false;
    std::string text;                   // Text: UTF-8
    float size = 12;                    // Text: pixel height
    int anchor = 0;                     // Text: -1 start, 0 middle, 1 end (x is that point; y is the baseline)
    bool vertical = false;              // Text: rotated -90 degrees (reads bottom to top)
};

// Lays the plot out in pixels: (0, 0) is the top-left corner, y grows downwards. Never throws;
// empty or degenerate data gives an empty frame with the title.
std::vector<Prim> layout_plot(const Plot& plot);

// [SECTION] Rendering
// SVG 1.1 document (UTF-8). Text is XML-escaped; bytes that are not valid UTF-8 or are control
// characters are replaced, so the document is always well-formed.
std::string render_svg(const Plot& plot);

struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgba;  // (height * width * 4) row-major, top row first
};

// Software rasteriser. Text needs /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf (Debian's
// fonts-dejavu-core); if it cannot be read, text is left out and everything else is drawn.
Image render_image(const Plot& plot);
bool plot_font_available();

// PNG file bytes of an image (stb_image_write).
std::string encode_png(const Image& image);

// Makes any bytes safe to show as text: valid UTF-8 passes, control characters and invalid
// bytes become \xHH escapes.
std::string printable_text(const std::string& bytes);

}  // namespace moe
