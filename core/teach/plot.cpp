// [SECTION] Text helpers (UTF-8)
// [SECTION] Layout
// [SECTION] SVG
// [SECTION] Rasteriser
// [SECTION] PNG
#include "core/teach/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string_view>

#include "core/error.h"

// stb: the implementations are compiled here, static to this file, so that they cannot clash
// with another copy elsewhere in the program (the app may have its own).
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#include <stb/stb_truetype.h>

namespace moe {

namespace {
constexpr const char* kFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
constexpr Rgba kInk = {30, 30, 30, 255};
constexpr Rgba kGrid = {225, 225, 225, 255};
constexpr Rgba kFrame = {120, 120, 120, 255};
constexpr Rgba kWhite = {255, 255, 255, 255};
}  // namespace

// [SECTION] Text helpers (UTF-8)

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if it is not valid.
static int utf8_sequence(std::string_view s, size_t i, uint32_t* cp) {
    const auto b = [&](size_t j) { return static_cast<uint8_t>(s[j]); };
    const uint8_t c = b(i);
    if (c < 0x80) { *cp = c; return 1; }
    int n = 0;
    uint32_t v = 0, min = 0;
    if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (i + n > s.size()) return 0;
    for (int j = 1; j < n; ++j) {
        if ((b(i + j) & 0xC0) != 0x80) return 0;
        v = (v << 6) | (b(i + j) & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || v == 0xFFFE || v == 0xFFFF) return 0;
    *cp = v;
    return n;
}

std::string printable_text(const std::string& bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        uint32_t cp = 0;
        const int n = utf8_sequence(bytes, i, &cp);
        if (n > 0 && cp >= 0x20 && cp != 0x7F) {
            out.append(bytes, i, n);
            i += n;
            continue;
        }
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(static_cast<uint8_t>(bytes[i])));
        out += buf;
        ++i;
    }
    return out;
}

static std::vector<uint32_t> decode_utf8(const std::string& text) {
    const std::string safe = printable_text(text);
    std::vector<uint32_t> cps;
    for (size_t i = 0; i < safe.size();) {
        uint32_t cp = 0;
        const int n = utf8_sequence(safe, i, &cp);
        MOE_ASSERT(n > 0, "printable_text returns valid UTF-8");
        cps.push_back(cp);
        i += n;
    }
    return cps;
}

// [SECTION] Layout

static std::string format_tick(double v, double step) {
    char buf[32];
    const double a = std::fabs(v);
    if (a != 0 && (a >= 1e6 || a < 1e-3)) std::snprintf(buf, sizeof buf, "%.3g", v);
    else if (step >= 1) std::snprintf(buf, sizeof buf, "%.0f", v);
    else if (step >= 0.1) std::snprintf(buf, sizeof buf, "%.1f", v);
    else if (step >= 0.01) std::snprintf(buf, sizeof buf, "%.2f", v);
    else std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s = buf;
    if (s == "-0") s = "0";
    return s;
}

// A round step (1, 2 or 5 times a power of ten) giving about `target` intervals over `range`.
static double nice_step(double range, int target) {
    if (!(range > 0) || !std::isfinite(range)) return 1.0;
    const double raw = range / target;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double f = raw / mag;
    const double m = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return m * mag;
}

static Prim rect(float x, float y, float w, float h, Rgba fill, Rgba stroke = {0, 0, 0, 0}, float lw = 1) {
    Prim p;
    p.kind = Prim::Rect;
    p.x = x; p.y = y; p.w = w; p.h = h;
    p.fill = fill;
    p.stroke = stroke;
    p.line_width = lw;
    return p;
}

static Prim line(float x0, float y0, float x1, float y1, Rgba c, float lw = 1, bool dashed = false) {
    Prim p;
    p.kind = Prim::Line;
    p.x = x0; p.y = y0; p.w = x1; p.h = y1;
    p.fill = c;
    p.line_width = lw;
    p.dashed = dashed;
    return p;
}

static Prim text(float x, float y, std::string s, float size, int anchor, Rgba c = kInk, bool vertical = false) {
    Prim p;
    p.kind = Prim::Text;
    p.x = x; p.y = y;
    p.text = std::move(s);
    p.size = size;
    p.anchor = anchor;
    p.fill = c;
    p.vertical = vertical;
    return p;
}

static bool finite(float v) { return std::isfinite(v); }

// The legend's width: its longest name at 11 px (DejaVu Sans averages about 0.6 em a character)
// plus the swatch, so a long name is never cut at the picture's right edge.
static float legend_width(const Plot& plot) {
    size_t longest = 0;
    for (const LegendEntry& e : plot.legend) longest = std::max(longest, e.name.size());
    if (longest == 0) return 0;
    return std::clamp(static_cast<float>(longest) * 6.6f + 40.0f, 130.0f, static_cast<float>(plot.width) * 0.45f);
}

static void layout_heatmap(const Plot& plot, std::vector<Prim>& out) {
    const PlotHeatmap& hm = plot.heatmap;
    const float W = static_cast<float>(plot.width), H = static_cast<float>(plot.height);
    const float L = hm.row_labels.empty() ? 16.0f : 64.0f, R = plot.legend.empty() ? 16.0f : legend_width(plot) + 10.0f;
    const float T = 44.0f + (hm.col_labels.empty() ? 0.0f : 18.0f), B = plot.x_label.empty() ? 12.0f : 36.0f;
    const float cw = std::max(0.0f, (W - L - R) / hm.n_cols), ch = std::max(0.0f, (H - T - B) / hm.n_rows);
    const bool have_values = hm.values.size() == static_cast<size_t>(hm.n_rows) * hm.n_cols;
    const bool have_marks = hm.marks.size() == hm.values.size() && have_values;
    for (int r = 0; r < hm.n_rows; ++r) {
        for (int c = 0; c < hm.n_cols; ++c) {
            const size_t i = static_cast<size_t>(r) * hm.n_cols + c;
            float v = have_values ? hm.values[i] : 0.0f;
            v = finite(v) ? std::clamp(v, 0.0f, 1.0f) : 0.0f;
            const auto mix = [&](uint8_t a) { return static_cast<uint8_t>(std::lround(255.0f + (a - 255.0f) * v)); };
            out.push_back(rect(L + c * cw, T + r * ch, cw, ch, {mix(hm.color.r), mix(hm.color.g), mix(hm.color.b), 255}));
        }
    }
    if (have_marks) {
        const float lw = std::clamp(std::min(cw, ch) * 0.15f, 1.0f, 2.5f);
        for (int r = 0; r < hm.n_rows; ++r) {
            for (int c = 0; c < hm.n_cols; ++c) {
                const CellMark m = hm.marks[static_cast<size_t>(r) * hm.n_cols + c];
                if (m == CellMark::None) continue;
                const float x = L + c * cw + lw / 2, y = T + r * ch + lw / 2, w = cw - lw, h = ch - lw;
                const Rgba col = m == CellMark::Chosen ? kInk : kColorDropped;
                out.push_back(rect(x, y, w, h, {0, 0, 0, 0}, col, lw));
                if (m == CellMark::Dropped) out.push_back(line(x, y, x + w, y + h, col, lw));
            }
        }
    }
    // Labels: thin them out when cells are smaller than the text.
    const int row_every = std::max(1, static_cast<int>(std::ceil(11.0f / std::max(ch, 0.01f))));
    for (int r = 0; r < static_cast<int>(hm.row_labels.size()) && r < hm.n_rows; r += row_every)
        out.push_back(text(L - 6, T + (r + 0.5f) * ch + 4, hm.row_labels[r], 11, 1));
    const int col_every = std::max(1, static_cast<int>(std::ceil(24.0f / std::max(cw, 0.01f))));
    for (int c = 0; c < static_cast<int>(hm.col_labels.size()) && c < hm.n_cols; c += col_every)
        out.push_back(text(L + (c + 0.5f) * cw, T - 6, hm.col_labels[c], 11, 0));
    out.push_back(rect(L, T, cw * hm.n_cols, ch * hm.n_rows, {0, 0, 0, 0}, kFrame, 1));
    if (!plot.x_label.empty()) out.push_back(text(L + cw * hm.n_cols / 2, H - 12, plot.x_label, 13, 0));
}

// A log-scale plot is laid out as the linear plot of log10(y), its ticks labelled 10^v.
static Plot log10_y(const Plot& plot) {
    Plot p = plot;
    auto lg = [](float y) { return y > 0 ? std::log10(y) : NAN; };
    for (PlotLine& l : p.lines)
        for (float& y : l.ys) y = lg(y);
    for (PlotHLine& h : p.hlines) h.y = lg(h.y);
    for (PlotText& t : p.texts) t.y = lg(t.y);
    p.bars.clear();  // bars from zero have no log-scale picture
    if (p.y_min < p.y_max && p.y_min > 0) {
        p.y_min = lg(p.y_min);
        p.y_max = lg(p.y_max);
    } else {
        p.y_min = p.y_max = 0;
    }
    return p;
}

static void layout_axes(const Plot& plot_in, std::vector<Prim>& out) {
    const Plot logged = plot_in.y_log ? log10_y(plot_in) : Plot{};
    const Plot& plot = plot_in.y_log ? logged : plot_in;
    const float W = static_cast<float>(plot.width), H = static_cast<float>(plot.height);
    const float L = 72, R = W - (plot.legend.empty() ? 20.0f : legend_width(plot) + 20.0f), T = 44, B = H - 56;
    if (R - L < 10 || B - T < 10) return;

    // Data ranges.
    double x0 = plot.x_min, x1 = plot.x_max, y0 = plot.y_min, y1 = plot.y_max;
    if (!(x0 < x1)) {
        double lo = INFINITY, hi = -INFINITY;
        for (const PlotBar& b : plot.bars) {
            if (!finite(b.x) || !finite(b.width)) continue;
            lo = std::min<double>(lo, b.x - b.width / 2);
            hi = std::max<double>(hi, b.x + b.width / 2);
        }
        for (const PlotLine& l : plot.lines)
            for (float x : l.xs) if (finite(x)) { lo = std::min<double>(lo, x); hi = std::max<double>(hi, x); }
        if (!plot.x_categories.empty()) {
            lo = std::min(lo, -0.5);
            hi = std::max(hi, plot.x_categories.size() - 0.5);
        }
        if (!(lo < hi)) { lo = (lo == hi && std::isfinite(lo)) ? lo - 1 : 0; hi = lo + 2; }
        x0 = lo; x1 = hi;
    }
    if (!(y0 < y1)) {
        double lo = INFINITY, hi = -INFINITY;
        for (const PlotBar& b : plot.bars) {
            for (float v : {b.y0, b.y1}) if (finite(v)) { lo = std::min<double>(lo, v); hi = std::max<double>(hi, v); }
        }
        if (!plot.bars.empty()) { lo = std::min(lo, 0.0); hi = std::max(hi, 0.0); }
        for (const PlotHLine& h : plot.hlines) if (finite(h.y)) { lo = std::min<double>(lo, h.y); hi = std::max<double>(hi, h.y); }
        for (const PlotLine& l : plot.lines)
            for (float y : l.ys) if (finite(y)) { lo = std::min<double>(lo, y); hi = std::max<double>(hi, y); }
        if (!std::isfinite(lo)) { lo = 0; hi = 1; }
        if (!(lo < hi)) { lo -= 1; hi += 1; }
        hi += (hi - lo) * 0.08;  // headroom for labels above the bars
        y0 = lo; y1 = hi;
    }
    const auto px = [&](double x) { return static_cast<float>(L + (x - x0) / (x1 - x0) * (R - L)); };
    const auto py = [&](double y) { return static_cast<float>(B - (y - y0) / (y1 - y0) * (B - T)); };
    const auto clampx = [&](float v) { return std::clamp(v, L, R); };
    const auto clampy = [&](float v) { return std::clamp(v, T, B); };

    // Grid and y ticks.
    const double ys = plot.y_log ? std::max(1.0, std::round(nice_step(y1 - y0, 5))) : nice_step(y1 - y0, 5);
    for (double v = std::ceil(y0 / ys) * ys; v <= y1 + ys * 1e-6; v += ys) {
        const float y = py(v);
        out.push_back(line(L, y, R, y, kGrid, 1));
        char tick[32];
        if (plot.y_log) std::snprintf(tick, sizeof tick, "%g", std::pow(10.0, std::round(v)));
        out.push_back(text(L - 6, y + 4, plot.y_log ? std::string(tick) : format_tick(v, ys), 11, 1));
    }
    // X ticks: categories, or round numbers.
    if (!plot.x_categories.empty()) {
        const int n = static_cast<int>(plot.x_categories.size());
        const float slot = (R - L) / static_cast<float>(x1 - x0);
        const int every = std::max(1, static_cast<int>(std::ceil(36.0f / std::max(slot, 0.01f))));
        for (int i = 0; i < n; i += every) out.push_back(text(px(i), B + 16, plot.x_categories[i], 11, 0));
    } else {
        const double xs = nice_step(x1 - x0, 6);
        for (double v = std::ceil(x0 / xs) * xs; v <= x1 + xs * 1e-6; v += xs) {
            out.push_back(line(px(v), B, px(v), B + 4, kFrame, 1));
            out.push_back(text(px(v), B + 16, format_tick(v, xs), 11, 0));
        }
    }
    // Data.
    for (const PlotBar& b : plot.bars) {
        if (!finite(b.x) || !finite(b.width) || !finite(b.y0) || !finite(b.y1)) continue;
        const float xa = clampx(px(b.x - b.width / 2)), xb = clampx(px(b.x + b.width / 2));
        const float ya = clampy(py(std::max(b.y0, b.y1))), yb = clampy(py(std::min(b.y0, b.y1)));
        if (xb > xa && yb > ya) out.push_back(rect(xa, ya, xb - xa, yb - ya, b.color));
    }
    for (const PlotLine& l : plot.lines) {
        Prim p;
        p.kind = Prim::Polyline;
        p.fill = l.color;
        p.line_width = l.width;
        const size_t n = std::min(l.xs.size(), l.ys.size());
        for (size_t i = 0; i < n; ++i) {
            if (!finite(l.xs[i]) || !finite(l.ys[i])) continue;
            p.pts.push_back(clampx(px(l.xs[i])));
            p.pts.push_back(clampy(py(l.ys[i])));
        }
        if (p.pts.size() >= 4) out.push_back(std::move(p));
    }
    for (const PlotHLine& h : plot.hlines) {
        if (!finite(h.y) || h.y < y0 || h.y > y1) continue;
        out.push_back(line(L, py(h.y), R, py(h.y), h.color, 2, h.dashed));
        if (!h.label.empty()) out.push_back(text(R - 4, py(h.y) - 5, h.label, 11, 1, h.color));
    }
    for (const PlotText& t : plot.texts) {
        if (!finite(t.x) || !finite(t.y)) continue;
        out.push_back(text(px(t.x), py(t.y), t.text, t.size, 0, t.color));
    }
    // Frame and axis labels.
    out.push_back(rect(L, T, R - L, B - T, {0, 0, 0, 0}, kFrame, 1));
    if (!plot.x_label.empty()) out.push_back(text((L + R) / 2, H - 12, plot.x_label, 13, 0));
    if (!plot.y_label.empty()) out.push_back(text(20, (T + B) / 2, plot.y_label, 13, 0, kInk, true));
}

std::vector<Prim> layout_plot(const Plot& plot) {
    std::vector<Prim> out;
    const float W = static_cast<float>(std::max(plot.width, 1)), H = static_cast<float>(std::max(plot.height, 1));
    out.push_back(rect(0, 0, W, H, kWhite));
    if (!plot.title.empty()) out.push_back(text(W / 2, 26, plot.title, 15, 0));
    if (plot.heatmap.n_rows > 0 && plot.heatmap.n_cols > 0) layout_heatmap(plot, out);
    else layout_axes(plot, out);
    // Legend, top right.
    float ly = 56;
    for (const LegendEntry& e : plot.legend) {
        if (ly > H - 16) break;
        const float x = W - legend_width(plot) - 6;
        out.push_back(rect(x, ly - 10, 12, 12, e.color, kFrame, 1));
        out.push_back(text(x + 18, ly, e.name, 11, -1));
        ly += 18;
    }
    return out;
}

// [SECTION] SVG

static std::string xml_escape(const std::string& s) {
    std::string out;
    for (char c : printable_text(s)) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

static std::string svg_color(Rgba c) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
    std::string s = buf;
    return s;
}

static std::string num(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", finite(v) ? v : 0.0f);
    return buf;
}

static std::string opacity(const char* attr, Rgba c) {
    if (c.a == 255) return {};
    char buf[48];
    std::snprintf(buf, sizeof buf, " %s=\"%.3f\"", attr, c.a / 255.0);
    return buf;
}

std::string render_svg(const Plot& plot) {
    const std::vector<Prim> prims = layout_plot(plot);
    const int W = std::max(plot.width, 1), H = std::max(plot.height, 1);
    std::string s;
    s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    s += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" + std::to_string(W) + "\" height=\"" +
         std::to_string(H) + "\" viewBox=\"0 0 " + std::to_string(W) + " " + std::to_string(H) + "\">\n";
    s += "<title>" + xml_escape(plot.title) + "</title>\n";
    s += "<g font-family=\"DejaVu Sans, Verdana, sans-serif\">\n";
    for (const Prim& p : prims) {
        switch (p.kind) {
            case Prim::Rect:
                s += "<rect x=\"" + num(p.x) + "\" y=\"" + num(p.y) + "\" width=\"" + num(p.w) + "\" height=\"" + num(p.h) + "\"";
                s += p.fill.a == 0 ? std::string(" fill=\"none\"") : " fill=\"" + svg_color(p.fill) + "\"" + opacity("fill-opacity", p.fill);
                if (p.stroke.a != 0)
                    s += " stroke=\"" + svg_color(p.stroke) + "\" stroke-width=\"" + num(p.line_width) + "\"" + opacity("stroke-opacity", p.stroke);
                s += "/>\n";
                break;
            case Prim::Line:
                s += "<line x1=\"" + num(p.x) + "\" y1=\"" + num(p.y) + "\" x2=\"" + num(p.w) + "\" y2=\"" + num(p.h) +
                     "\" stroke=\"" + svg_color(p.fill) + "\" stroke-width=\"" + num(p.line_width) + "\"" + opacity("stroke-opacity", p.fill);
                if (p.dashed) s += " stroke-dasharray=\"6 4\"";
                s += "/>\n";
                break;
            case Prim::Polyline: {
                s += "<polyline fill=\"none\" stroke=\"" + svg_color(p.fill) + "\" stroke-width=\"" + num(p.line_width) +
                     "\" stroke-linejoin=\"round\" points=\"";
                for (size_t i = 0; i + 1 < p.pts.size(); i += 2) s += (i ? " " : "") + num(p.pts[i]) + "," + num(p.pts[i + 1]);
                s += "\"/>\n";
                break;
            }
            case Prim::Text: {
                const char* anchor = p.anchor < 0 ? "start" : p.anchor > 0 ? "end" : "middle";
                s += "<text x=\"" + num(p.x) + "\" y=\"" + num(p.y) + "\" font-size=\"" + num(p.size) + "\" text-anchor=\"" +
                     anchor + "\" fill=\"" + svg_color(p.fill) + "\"";
                if (p.vertical) s += " transform=\"rotate(-90 " + num(p.x) + " " + num(p.y) + ")\"";
                s += ">" + xml_escape(p.text) + "</text>\n";
                break;
            }
        }
    }
    s += "</g>\n</svg>\n";
    return s;
}

// [SECTION] Rasteriser

namespace {

struct Font {
    std::string data;
    stbtt_fontinfo info{};
    bool ok = false;
    Font() {
        std::ifstream in(kFontPath, std::ios::binary);
        if (!in) return;
        data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
        ok = !data.empty() && stbtt_GetFontOffsetForIndex(bytes, 0) >= 0 &&
             stbtt_InitFont(&info, bytes, stbtt_GetFontOffsetForIndex(bytes, 0)) != 0;
    }
};

const Font& font() {
    static const Font f;  // read once, thread-safe initialisation
    return f;
}

class Canvas {
public:
    explicit Canvas(Image& img) : img_(img) {}

    void blend(int x, int y, Rgba c, float coverage) {
        if (x < 0 || y < 0 || x >= img_.width || y >= img_.height || !(coverage > 0)) return;
        const float a = std::min(coverage, 1.0f) * (c.a / 255.0f);
        uint8_t* d = &img_.rgba[(static_cast<size_t>(y) * img_.width + x) * 4];
        d[0] = static_cast<uint8_t>(std::lround(d[0] + (c.r - d[0]) * a));
        d[1] = static_cast<uint8_t>(std::lround(d[1] + (c.g - d[1]) * a));
        d[2] = static_cast<uint8_t>(std::lround(d[2] + (c.b - d[2]) * a));
        d[3] = static_cast<uint8_t>(std::lround(d[3] + (255 - d[3]) * a));
    }

    // Exact pixel-area coverage, so edges at fractional positions are anti-aliased.
    void fill_rect(float x, float y, float w, float h, Rgba c) {
        if (!(w > 0) || !(h > 0) || c.a == 0) return;
        const float x1 = x + w, y1 = y + h;
        const int ix0 = std::max(0, static_cast<int>(std::floor(x))), ix1 = std::min(img_.width, static_cast<int>(std::ceil(x1)));
        const int iy0 = std::max(0, static_cast<int>(std::floor(y))), iy1 = std::min(img_.height, static_cast<int>(std::ceil(y1)));
        for (int py = iy0; py < iy1; ++py) {
            const float cy = std::min<float>(py + 1, y1) - std::max<float>(py, y);
            for (int px = ix0; px < ix1; ++px) {
                const float cx = std::min<float>(px + 1, x1) - std::max<float>(px, x);
                blend(px, py, c, cx * cy);
            }
        }
    }

    // A segment of the given width with round caps; coverage from the distance to the segment.
    void draw_segment(float x0, float y0, float x1, float y1, float width, Rgba c) {
        const float r = std::max(width, 0.5f) / 2;
        const int ix0 = std::max(0, static_cast<int>(std::floor(std::min(x0, x1) - r - 1)));
        const int ix1 = std::min(img_.width - 1, static_cast<int>(std::ceil(std::max(x0, x1) + r + 1)));
        const int iy0 = std::max(0, static_cast<int>(std::floor(std::min(y0, y1) - r - 1)));
        const int iy1 = std::min(img_.height - 1, static_cast<int>(std::ceil(std::max(y0, y1) + r + 1)));
        const float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
        for (int py = iy0; py <= iy1; ++py) {
            for (int px = ix0; px <= ix1; ++px) {
                const float cx = px + 0.5f, cy = py + 0.5f;
                float t = len2 > 0 ? ((cx - x0) * dx + (cy - y0) * dy) / len2 : 0.0f;
                t = std::clamp(t, 0.0f, 1.0f);
                const float ex = x0 + t * dx - cx, ey = y0 + t * dy - cy;
                const float d = std::sqrt(ex * ex + ey * ey);
                blend(px, py, c, std::clamp(r + 0.5f - d, 0.0f, 1.0f));
            }
        }
    }

    void draw_line(float x0, float y0, float x1, float y1, float width, Rgba c, bool dashed) {
        if (!dashed) { draw_segment(x0, y0, x1, y1, width, c); return; }
        const float len = std::hypot(x1 - x0, y1 - y0);
        if (!(len > 0)) return;
        for (float s = 0; s < len; s += 10.0f) {
            const float e = std::min(s + 6.0f, len);
            draw_segment(x0 + (x1 - x0) * s / len, y0 + (y1 - y0) * s / len, x0 + (x1 - x0) * e / len,
                         y0 + (y1 - y0) * e / len, width, c);
        }
    }

    void draw_text(const Prim& p) {
        const Font& f = font();
        if (!f.ok || p.text.empty() || !(p.size > 0)) return;
        const std::vector<uint32_t> cps = decode_utf8(p.text);
        const float scale = stbtt_ScaleForPixelHeight(&f.info, p.size);
        int ascent = 0, descent = 0, gap = 0;
        stbtt_GetFontVMetrics(&f.info, &ascent, &descent, &gap);
        // Render the string into a coverage buffer first (baseline at row `base`), then blit it,
        // upright or rotated; measuring and drawing share one pass over the glyphs.
        const int base = static_cast<int>(std::ceil(ascent * scale));
        const int th = base + static_cast<int>(std::ceil(-descent * scale)) + 1;
        float adv_total = 0;
        for (size_t i = 0; i < cps.size(); ++i) {
            int adv = 0, lsb = 0;
            stbtt_GetCodepointHMetrics(&f.info, static_cast<int>(cps[i]), &adv, &lsb);
            adv_total += adv * scale;
            if (i + 1 < cps.size()) adv_total += scale * stbtt_GetCodepointKernAdvance(&f.info, static_cast<int>(cps[i]), static_cast<int>(cps[i + 1]));
        }
        const int tw = static_cast<int>(std::ceil(adv_total)) + 2;
        if (tw > 8192) return;  // absurdly long label: nothing sensible to draw
        std::vector<uint8_t> cov(static_cast<size_t>(tw) * th, 0);
        float pen = 0;
        for (size_t i = 0; i < cps.size(); ++i) {
            const int cp = static_cast<int>(cps[i]);
            const float shift = pen - std::floor(pen);
            int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
            stbtt_GetCodepointBitmapBoxSubpixel(&f.info, cp, scale, scale, shift, 0, &x0, &y0, &x1, &y1);
            const int gw = x1 - x0, gh = y1 - y0;
            if (gw > 0 && gh > 0 && gw < 1024 && gh < 1024) {
                std::vector<uint8_t> glyph(static_cast<size_t>(gw) * gh);
                stbtt_MakeCodepointBitmapSubpixel(&f.info, glyph.data(), gw, gh, gw, scale, scale, shift, 0, cp);
                const int ox = static_cast<int>(std::floor(pen)) + x0, oy = base + y0;
                for (int gy = 0; gy < gh; ++gy)
                    for (int gx = 0; gx < gw; ++gx) {
                        const int tx = ox + gx, ty = oy + gy;
                        if (tx < 0 || ty < 0 || tx >= tw || ty >= th) continue;
                        uint8_t& d = cov[static_cast<size_t>(ty) * tw + tx];
                        d = static_cast<uint8_t>(std::min(255, d + glyph[static_cast<size_t>(gy) * gw + gx]));
                    }
            }
            int adv = 0, lsb = 0;
            stbtt_GetCodepointHMetrics(&f.info, cp, &adv, &lsb);
            pen += adv * scale;
            if (i + 1 < cps.size()) pen += scale * stbtt_GetCodepointKernAdvance(&f.info, cp, static_cast<int>(cps[i + 1]));
        }
        const float start = p.anchor < 0 ? 0.0f : p.anchor > 0 ? -adv_total : -adv_total / 2;
        const int ox = static_cast<int>(std::lround(p.x)), oy = static_cast<int>(std::lround(p.y));
        const int s0 = static_cast<int>(std::lround(start));
        for (int ty = 0; ty < th; ++ty)
            for (int tx = 0; tx < tw; ++tx) {
                const uint8_t c = cov[static_cast<size_t>(ty) * tw + tx];
                if (c == 0) continue;
                // Upright: (tx, ty) -> (x + tx, y + ty - base). Rotated -90: reading direction is up.
                if (!p.vertical) blend(ox + s0 + tx, oy + ty - base, p.fill, c / 255.0f);
                else blend(ox + ty - base, oy - s0 - tx, p.fill, c / 255.0f);
            }
    }

private:
    Image& img_;
};

}  // namespace

bool plot_font_available() { return font().ok; }

Image render_image(const Plot& plot) {
    Image img;
    img.width = std::clamp(plot.width, 1, 8192);
    img.height = std::clamp(plot.height, 1, 8192);
    img.rgba.assign(static_cast<size_t>(img.width) * img.height * 4, 255);
    Canvas cv(img);
    for (const Prim& p : layout_plot(plot)) {
        switch (p.kind) {
            case Prim::Rect:
                cv.fill_rect(p.x, p.y, p.w, p.h, p.fill);
                if (p.stroke.a != 0) {
                    const float x1 = p.x + p.w, y1 = p.y + p.h;
                    cv.draw_segment(p.x, p.y, x1, p.y, p.line_width, p.stroke);
                    cv.draw_segment(x1, p.y, x1, y1, p.line_width, p.stroke);
                    cv.draw_segment(x1, y1, p.x, y1, p.line_width, p.stroke);
                    cv.draw_segment(p.x, y1, p.x, p.y, p.line_width, p.stroke);
                }
                break;
            case Prim::Line: cv.draw_line(p.x, p.y, p.w, p.h, p.line_width, p.fill, p.dashed); break;
            case Prim::Polyline:
                for (size_t i = 0; i + 3 < p.pts.size(); i += 2)
                    cv.draw_segment(p.pts[i], p.pts[i + 1], p.pts[i + 2], p.pts[i + 3], p.line_width, p.fill);
                break;
            case Prim::Text: cv.draw_text(p); break;
        }
    }
    return img;
}

// [SECTION] PNG

static void append_bytes(void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

std::string encode_png(const Image& image) {
    MOE_ASSERT(image.width > 0 && image.height > 0 &&
                   image.rgba.size() == static_cast<size_t>(image.width) * image.height * 4,
               "encode_png needs a consistent image");
    std::string out;
    const int ok = stbi_write_png_to_func(append_bytes, &out, image.width, image.height, 4, image.rgba.data(), image.width * 4);
    MOE_ASSERT(ok != 0 && !out.empty(), "stb_image_write failed on an in-memory PNG");
    return out;
}

}  // namespace moe
