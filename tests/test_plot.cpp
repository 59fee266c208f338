// The plot renderers: the PNG decodes with the right size and has the bar colours where the bars
// are; the SVG is well-formed XML with the text as <text>; odd bytes never break either.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/teach/export.h"
#include "core/teach/palette.h"
#include "core/teach/plot.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "xml_check.h"

namespace moe {
namespace {

struct Decoded {
    int w = 0, h = 0;
    std::vector<uint8_t> rgba;
    Rgba at(int x, int y) const {
        const uint8_t* p = &rgba[(static_cast<size_t>(y) * w + x) * 4];
        return {p[0], p[1], p[2], p[3]};
    }
};

Decoded decode(const std::string& png) {
    Decoded d;
    int n = 0;
    unsigned char* px = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()), static_cast<int>(png.size()), &d.w, &d.h, &n, 4);
    if (px) {
        d.rgba.assign(px, px + static_cast<size_t>(d.w) * d.h * 4);
        stbi_image_free(px);
    }
    return d;
}

Plot two_bars() {
    Plot p;
    p.width = 400;
    p.height = 300;
    p.title = "Two bars";
    p.x_categories = {"0", "1"};
    p.bars.push_back({0, 0.8f, 0, 10, expert_color(0)});
    p.bars.push_back({1, 0.8f, 0, 5, expert_color(1)});
    p.bars.push_back({1, 0.8f, 5, 8, kColorDropped});
    p.hlines.push_back({6, kColorCapacity, true, "capacity 6"});
    p.y_min = 0;
    p.y_max = 10;
    return p;
}

TEST(Palette, OkabeItoFirstThenDistinctHues) {
    EXPECT_EQ(expert_color(0), (Rgba{230, 159, 0, 255}));
    EXPECT_EQ(expert_color(4), (Rgba{0, 114, 178, 255}));
    for (int i = 0; i < 64; ++i)
        for (int j = i + 1; j < 64; ++j) EXPECT_FALSE(expert_color(i) == expert_color(j)) << i << " vs " << j;
}

TEST(PlotPng, DecodesWithTheRightSizeAndBarColours) {
    const Plot p = two_bars();
    const Decoded d = decode(encode_png(render_image(p)));
    ASSERT_EQ(d.w, 400);
    ASSERT_EQ(d.h, 300);
    // Plot area: L = 72, R = 380, T = 44, B = 244; x range [-0.5, 1.5], y range [0, 10].
    const auto px = [](double x) { return static_cast<int>(72 + (x + 0.5) / 2.0 * 308); };
    const auto py = [](double y) { return static_cast<int>(244 - y / 10.0 * 200); };
    EXPECT_EQ(d.at(px(0), py(3)), expert_color(0));      // inside bar 0
    EXPECT_EQ(d.at(px(0) + 10, py(8)), expert_color(0));
    EXPECT_EQ(d.at(px(1), py(2)), expert_color(1));      // kept part of bar 1
    EXPECT_EQ(d.at(px(1) - 5, py(7.5)), kColorDropped);  // overflow stacked on top
    EXPECT_EQ(d.at(px(1) - 20, py(9.5)), (Rgba{255, 255, 255, 255}));  // above bar 1: background
    // The capacity line crosses the gap between the bars in its own colour (dashed: look along it).
    int red = 0;
    for (int x = px(0.5) - 10; x < px(0.5) + 10; ++x) {
        const Rgba c = d.at(x, py(6));
        red += c.r > 150 && c.g < 80 && c.b < 80;
    }
    EXPECT_GT(red, 4);
}

TEST(PlotPng, DrawsTextWhenTheFontIsThere) {
    if (!plot_font_available()) GTEST_SKIP() << "DejaVuSans.ttf not installed";
    Plot p;
    p.width = 200;
    p.height = 60;
    p.title = "MMMM";
    const Decoded with = decode(encode_png(render_image(p)));
    p.title.clear();
    const Decoded without = decode(encode_png(render_image(p)));
    int dark = 0;
    for (int y = 0; y < 40; ++y)
        for (int x = 0; x < 200; ++x) dark += with.at(x, y).r < 128 && without.at(x, y).r > 200;
    EXPECT_GT(dark, 40);  // the title's ink, centred near the top
}

TEST(PlotPng, AntiAliasedLineHasPartialCoverage) {
    Plot p;
    p.width = 200;
    p.height = 200;
    p.lines.push_back({"l", {0, 0, 0, 255}, 2.0f, {0, 1}, {0, 0.37f}});
    const Image img = render_image(p);
    int grey = 0;
    for (size_t i = 0; i < img.rgba.size(); i += 4) grey += img.rgba[i] > 40 && img.rgba[i] < 215;
    EXPECT_GT(grey, 20);  // edge pixels blended, not just black and white
}

TEST(PlotSvg, IsWellFormedWithTextElements) {
    Plot p = two_bars();
    p.x_label = "expert <&> \"quoted\"";
    p.legend.push_back({"kept & dropped", expert_color(0)});
    const std::string svg = render_svg(p);
    std::string why;
    EXPECT_TRUE(test::xml_well_formed(svg, &why)) << why << "\n" << svg;
    EXPECT_NE(svg.find("<svg"), std::string::npos);
    EXPECT_NE(svg.find(">Two bars</text>"), std::string::npos);
    EXPECT_NE(svg.find("expert &lt;&amp;&gt; &quot;quoted&quot;"), std::string::npos);
    EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);  // the capacity line
    EXPECT_NE(svg.find("#e69f00"), std::string::npos);           // expert 0's colour
}

TEST(PlotSvg, HeatmapMarksChosenAndDropped) {
    Plot p;
    p.heatmap.n_rows = 2;
    p.heatmap.n_cols = 3;
    p.heatmap.values = {0.1f, 0.7f, 0.2f, 0.5f, 0.25f, 0.25f};
    p.heatmap.marks = {CellMark::None, CellMark::Chosen, CellMark::None, CellMark::Dropped, CellMark::None, CellMark::None};
    p.heatmap.row_labels = {"a", "b"};
    const std::string svg = render_svg(p);
    std::string why;
    ASSERT_TRUE(test::xml_well_formed(svg, &why)) << why;
    char dropped_stroke[32];  // the dropped cell is outlined in the palette's dropped colour
    std::snprintf(dropped_stroke, sizeof dropped_stroke, "stroke=\"#%02x%02x%02x\"", kColorDropped.r,
                  kColorDropped.g, kColorDropped.b);
    EXPECT_NE(svg.find(dropped_stroke), std::string::npos) << dropped_stroke;
    const Decoded d = decode(encode_png(render_image(p)));
    EXPECT_EQ(d.w, p.width);
    EXPECT_EQ(d.h, p.height);
}

TEST(PlotText, AnyBytesBecomeValidText) {
    std::mt19937 rng(7);
    for (int round = 0; round < 200; ++round) {
        std::string bytes(1 + rng() % 20, '\0');
        for (char& c : bytes) c = static_cast<char>(rng() & 0xFF);
        Plot p;
        p.width = 120;
        p.height = 80;
        p.title = bytes;
        p.x_categories = {bytes};
        p.bars.push_back({0, 0.5f, 0, 1, expert_color(0)});
        std::string why;
        ASSERT_TRUE(test::xml_well_formed(render_svg(p), &why)) << why;
        const Image img = render_image(p);
        ASSERT_EQ(img.rgba.size(), size_t(120 * 80 * 4));
    }
    EXPECT_EQ(printable_text("a\nb\xff"), "a\\x0Ab\\xFF");
    EXPECT_EQ(printable_text("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(PlotLayout, DegenerateDataStillRenders) {
    Plot p;  // nothing at all
    EXPECT_GE(layout_plot(p).size(), 1u);
    p.bars.push_back({0, 0.8f, 5, 5, expert_color(0)});  // zero-height bar, all-equal range
    p.lines.push_back({"nan", expert_color(1), 2, {0, 1}, {NAN, INFINITY}});
    const Image img = render_image(p);
    EXPECT_EQ(img.width, 800);
    std::string why;
    EXPECT_TRUE(test::xml_well_formed(render_svg(p), &why)) << why;
}

// The memory-vs-compute export says "log scale": its y axis must be one, with a tick per decade,
// and its long legend names must stay inside the picture.
TEST(Plot, LogScaleTicksAtPowersOfTenAndTheLegendFits) {
    LineChart c;
    c.title = "t";
    c.xs = {0, 1, 2, 3};
    c.names = {"dense, same total params (d_ff=1024)", "MoE (N=8, K=2)"};
    c.ys = {{1000, 100, 10, 1}, {500, 60, 8, 2}};
    c.y_log = true;
    const Plot p = line_chart_plot(c);
    const std::vector<Prim> prims = layout_plot(p);
    std::vector<std::string> ticks;
    float legend_right = 0;
    for (const Prim& q : prims) {
        if (q.kind != Prim::Text) continue;
        ticks.push_back(q.text);
        // Anchored at its start: estimate the width as 0.6 em a character, as the layout does.
        if (q.text == c.names[0]) legend_right = q.x + 0.6f * q.size * static_cast<float>(q.text.size());
    }
    for (const char* t : {"1", "10", "100", "1000"})
        EXPECT_NE(std::find(ticks.begin(), ticks.end(), std::string(t)), ticks.end()) << "no tick " << t;
    EXPECT_GT(legend_right, 0.0f);
    EXPECT_LE(legend_right, static_cast<float>(p.width));
    // On the log axis 10 sits halfway between 1 and 100.
    float y1 = 0, y10 = 0, y100 = 0;
    for (const Prim& q : prims)
        if (q.kind == Prim::Text && q.anchor == 1) {
            if (q.text == "1") y1 = q.y;
            if (q.text == "10") y10 = q.y;
            if (q.text == "100") y100 = q.y;
        }
    EXPECT_NEAR(y10, (y1 + y100) / 2, 1.0f);
}

}  // namespace
}  // namespace moe
