// The views at real-model sizes: `moelab --random-model` (the byte LM's own code, random weights,
// 8 to 256 experts) renders under xvfb, and the picture is checked against routing this test
// computes itself with the same model: the router lights exactly the chosen experts, unchosen
// cells are coloured by their router probability, heatmap cells carry the viridis colour of
// their probability with the shader and with the rectangle fallback, the load bars name the
// busiest and idlest experts, the overview's matrices sit where they say.
// Skips (as test_app_gui) when the app was not built or no X server can be had.
#include <set>

#include "core/models/lm.h"
#include "core/models/mix2d.h"
#include "core/teach/palette.h"
#include "gui_test_util.h"

namespace {

using namespace moe_gui_test;

// The model `--random-model experts=N,layers=L,k=K,d=32,ff=16,seq=1024,seed=S` builds
// (app/random_model.cpp: 2 heads, no shared experts, every layer MoE).
moe::LmConfig random_config(int n_experts, int n_layers, int k) {
    moe::LmConfig cfg;
    cfg.d_model = 32;
    cfg.n_heads = 2;
    cfg.n_layers = n_layers;
    cfg.max_seq = 1024;
    cfg.moe.d_model = 32;
    cfg.moe.d_ff = 16;
    cfg.moe.n_experts = n_experts;
    cfg.moe.n_shared = 0;
    cfg.router.n_experts = n_experts;
    cfg.router.k = k;
    return cfg;
}

std::string random_spec(int n_experts, int n_layers, int k, int seed) {
    return "experts=" + std::to_string(n_experts) + ",layers=" + std::to_string(n_layers) + ",k=" + std::to_string(k) +
           ",d=32,ff=16,seq=1024,seed=" + std::to_string(seed);
}

constexpr const char* kText = "Mixture of experts, routed live: 42 tokens!";

moe::LmForward route_text(const moe::LmConfig& cfg, int seed) {
    const moe::LmModel model = moe::LmModel::init(cfg, static_cast<uint64_t>(seed));
    moe::LmRunOptions opt;
    opt.router = cfg.router;
    moe::LmForward out;
    const std::string text = kText;
    model.forward(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()), opt, out);
    return out;
}

struct Rgb {
    int r = 0, g = 0, b = 0;
};

Rgb pixel(const Image& img, float x, float y) {
    const int xi = std::clamp(static_cast<int>(x), 0, img.w - 1), yi = std::clamp(static_cast<int>(y), 0, img.h - 1);
    const unsigned char* p = img.at(xi, yi);
    return {p[0], p[1], p[2]};
}

bool near(Rgb a, Rgb b, int tol) {
    return std::abs(a.r - b.r) <= tol && std::abs(a.g - b.g) <= tol && std::abs(a.b - b.b) <= tol;
}

std::string str(Rgb c) {
    return "(" + std::to_string(c.r) + "," + std::to_string(c.g) + "," + std::to_string(c.b) + ")";
}

// The app's viridis ramp (app/gl_shaders.cpp, shaders/heatmap.frag): five stops, linear between.
Rgb viridis(float t, float scale = 1.0f) {
    static const float stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = std::clamp(t, 0.0f, 1.0f) * 4.0f;
    const int i = std::min(static_cast<int>(t), 3);
    const float f = t - static_cast<float>(i);
    auto ch = [&](int c) { return static_cast<int>((stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f) * scale + 0.5f); };
    return {ch(0), ch(1), ch(2)};
}

Rgb expert_rgb(int e) {
    const moe::Rgba c = moe::expert_color(e);
    return {c.r, c.g, c.b};
}

// "router lit E12 563.5 275.3 20.7 20.7 gate 0.359" and friends.
struct Cell {
    int expert = -1;
    float x = 0, y = 0, w = 0, h = 0;
};

std::vector<Cell> cells_named(const RunResult& r, const std::string& prefix) {
    std::vector<Cell> out;
    for (const std::string& line : r.drawn) {
        if (line.rfind(prefix, 0) != 0) continue;
        Cell c;
        if (std::sscanf(line.c_str() + prefix.size(), " E%d %f %f %f %f", &c.expert, &c.x, &c.y, &c.w, &c.h) == 5)
            out.push_back(c);
    }
    return out;
}

const std::string* drawn_line(const RunResult& r, const std::string& prefix) {
    for (const std::string& line : r.drawn)
        if (line.rfind(prefix, 0) == 0) return &line;
    return nullptr;
}

class Views : public GuiTest {
public:
    using GuiTest::screenshot;
};

// The router at N = 8 (boxes), 64 and 256 (cell grid): the lit experts are exactly the ones the
// model chose for the token, each lit in its own colour; unchosen cells show their probability.
void check_router(Views& t, int n_experts, int k, const char* size) {
    SCOPED_TRACE("N = " + std::to_string(n_experts) + " at " + size);
    constexpr int kSeed = 7, kToken = 5;
    RunResult r;
    const Image img = t.screenshot("router" + std::to_string(n_experts) + ".png",
                                   "--random-model " + random_spec(n_experts, 2, k, kSeed) + " --text " + quote(kText) +
                                       " --token " + std::to_string(kToken) + " --size " + size,
                                   &r);
    ASSERT_GT(img.w, 0) << r.err;
    const moe::LmForward fwd = route_text(random_config(n_experts, 2, k), kSeed);
    const moe::RoutingTrace& tr = fwd.traces[0];
    std::set<int> chosen;
    for (const moe::RoutedPair& p : tr.token_pairs(kToken)) chosen.insert(p.expert);
    ASSERT_EQ(static_cast<int>(chosen.size()), k);

    const std::vector<Cell> lit = cells_named(r, "router lit");
    std::set<int> lit_set;
    for (const Cell& c : lit) lit_set.insert(c.expert);
    EXPECT_EQ(lit_set, chosen) << "the router must light exactly the experts the model chose\n" << r.out;
    const bool boxes = n_experts <= 16;
    for (const Cell& c : lit) {
        // Boxes carry their label in the middle: look left of it. Cells are plain.
        const Rgb got = pixel(img, c.x + c.w * (boxes ? 0.12f : 0.5f), c.y + c.h * 0.5f);
        EXPECT_TRUE(near(got, expert_rgb(c.expert), 14))
            << "E" << c.expert << " is lit but drawn " << str(got) << ", its colour is " << str(expert_rgb(c.expert));
    }
    // The token box shows the tokenizer's piece of the token ("r" of "Mixture").
    const std::string* tok = drawn_line(r, "router token ");
    ASSERT_NE(tok, nullptr) << r.out;
    EXPECT_EQ(*tok, "router token " + std::to_string(kToken) + " " + std::string(1, kText[kToken]));
    if (boxes) return;
    // Every chosen expert is named with its gate, inside the router panel (the lead saw 2 of 8
    // named at 256 experts at 1280x720, the other tags did not fit).
    ASSERT_TRUE(r.panels.count("Router")) << r.out;
    const Rect panel = r.panels.at("Router");
    std::set<int> tagged;
    for (const std::string& line : r.drawn) {
        int e = -1, e2 = -2;
        float x = 0, y = 0, w = 0, h = 0, gate = -1;
        if (std::sscanf(line.c_str(), "router tag E%d %f %f %f %f E%d %f", &e, &x, &y, &w, &h, &e2, &gate) != 7) continue;
        tagged.insert(e);
        EXPECT_EQ(e2, e) << line;
        for (const moe::RoutedPair& p : tr.token_pairs(kToken))
            if (p.expert == e) EXPECT_NEAR(gate, p.gate, 0.0051f) << line;
        EXPECT_GE(x, panel.x) << line;
        EXPECT_GE(y, panel.y) << line;
        EXPECT_LE(x + w, panel.x + panel.w) << line;
        EXPECT_LE(y + h, panel.y + panel.h) << line;
    }
    EXPECT_EQ(tagged, chosen) << "every chosen expert must be named with its gate\n" << r.out;
    const std::vector<Cell> cells = cells_named(r, "router cell");
    ASSERT_EQ(static_cast<int>(cells.size()), n_experts);
    float max_p = 0;
    for (int e = 0; e < n_experts; ++e) max_p = std::max(max_p, tr.probs(kToken, e));
    int checked = 0, matching = 0;
    for (const Cell& c : cells) {
        if (chosen.count(c.expert)) continue;
        ++checked;
        // Darkened viridis (0.7) of p / max p; arcs and gate tags cover some cells (a quarter of
        // an 8 x 8 grid at 1280x720), hence the share.
        const Rgb want = viridis(tr.probs(kToken, c.expert) / max_p, 0.7f);
        matching += near(pixel(img, c.x + c.w * 0.5f, c.y + c.h * 0.5f), want, 8) ? 1 : 0;
    }
    EXPECT_GE(matching, checked * 6 / 10) << matching << " of " << checked << " unchosen cells show their probability";
}

TEST_F(Views, RouterLightsAndNamesTheChosenExpertsAt8And64And256) {
    check_router(*this, 8, 2, "1280x720");
    check_router(*this, 64, 8, "1280x720");
    check_router(*this, 256, 8, "1280x720");
    check_router(*this, 256, 8, "1920x1080");
}

// The heatmap's cells are the viridis colour of p / p_max, drawn by the shader, and the same
// picture comes from the rectangle fallback when the shader does not compile (which is said).
TEST_F(Views, HeatmapShaderAndFallbackDrawTheProbabilities) {
    constexpr int kSeed = 3, kN = 64;
    const std::string args = "--random-model " + random_spec(kN, 2, 8, kSeed) + " --text " + quote(kText) +
                             " --token 0 --size 1920x1080";
    RunResult with;
    const Image shaded = screenshot("shader.png", args, &with);
    EXPECT_EQ(with.err.find("does not compile"), std::string::npos) << with.err;

    // A shaders folder whose heatmap.frag is broken: the app must say so and still draw.
    const fs::path broken = dir_ / "broken_shaders";
    fs::create_directories(broken);
    for (const char* f : {"quad.vert", "mix2d.frag"})
        fs::copy_file(fs::path(MOE_SOURCE_DIR) / "shaders" / f, broken / f);
    std::ofstream(broken / "heatmap.frag") << "#version 330 core\nvoid main() { this is not glsl; }\n";
    RunResult without;
    const Image flat = screenshot("fallback.png", args, &without, "MOELAB_SHADERS_DIR=" + quote(broken.string()));
    EXPECT_NE(without.err.find("heatmap.frag"), std::string::npos) << without.err;
    EXPECT_NE(without.err.find("rectangles"), std::string::npos) << without.err;

    const moe::LmForward fwd = route_text(random_config(kN, 2, 8), kSeed);
    const moe::RoutingTrace& tr = fwd.traces[0];
    const float p_max = tr.probs.maxCoeff();
    std::set<std::pair<int, int>> chosen;
    for (const moe::RoutedPair& p : tr.pairs) chosen.insert({p.token, p.expert});
    for (const auto* run : {&with, &without}) {
        const Image& img = run == &with ? shaded : flat;
        const std::string* line = drawn_line(*run, "heatmap ");
        ASSERT_NE(line, nullptr) << run->out;
        int n_tok = 0, n_exp = 0, first = 0, last = 0, shader = -1;
        float x0 = 0, y0 = 0, cw = 0, ch = 0;
        ASSERT_EQ(std::sscanf(line->c_str(), "heatmap %d x %d at %f %f cell %f x %f rows %d..%d shader %d", &n_tok, &n_exp,
                              &x0, &y0, &cw, &ch, &first, &last, &shader),
                  9)
            << *line;
        EXPECT_EQ(shader, run == &with ? 1 : 0);
        EXPECT_EQ(n_exp, kN);
        ASSERT_GE(cw, 4.0f) << "cells too small to sample at 1920x1080";
        int checked = 0, matching = 0;
        for (int t = 0; t < 4; ++t)
            for (int e = 0; e < kN; ++e) {
                if (chosen.count({t, e})) continue;  // outlined
                ++checked;
                const Rgb got = pixel(*&img, x0 + cw * (static_cast<float>(e) + 0.4f), y0 + ch * (static_cast<float>(t) + 0.5f));
                matching += near(got, viridis(tr.probs(t, e) / p_max), 6) ? 1 : 0;
            }
        EXPECT_GE(matching, checked * 95 / 100) << (run == &with ? "shader" : "fallback") << ": " << matching << " of "
                                                << checked << " cells have their probability's colour";
    }
    // (The pictures are not compared pixel for pixel: the status bar grows with the message and
    // moves the grid; the cell colours above are the comparison.)
}

// At 256 experts the load bars name the busiest and the idlest expert, as the trace says.
TEST_F(Views, LoadBarsNameTheBusiestAndIdlestExpertAt256) {
    constexpr int kSeed = 11, kN = 256;
    RunResult r;
    // 1280x720: the smallest grid, where the load panel is about 350 x 170 px.
    screenshot("load.png", "--random-model " + random_spec(kN, 2, 8, kSeed) + " --text " + quote(kText) +
                               " --size 1280x720", &r);
    const moe::LmForward fwd = route_text(random_config(kN, 2, 8), kSeed);
    const moe::RoutingTrace& tr = fwd.traces[0];
    int most = 0, least = 0;
    for (int e = 1; e < kN; ++e) {
        if (tr.expert_wanted[e] > tr.expert_wanted[most]) most = e;
        if (tr.expert_wanted[e] < tr.expert_wanted[least]) least = e;
    }
    const std::string* line = drawn_line(r, "load most");
    ASSERT_NE(line, nullptr) << r.out;
    int got_most = -1, n_most = -1, got_least = -1, n_least = -1, sorted = -1;
    ASSERT_EQ(std::sscanf(line->c_str(), "load most E%d %d least E%d %d sorted %d", &got_most, &n_most, &got_least,
                          &n_least, &sorted),
              5);
    EXPECT_EQ(got_most, most);
    EXPECT_EQ(n_most, tr.expert_wanted[most]);
    EXPECT_EQ(got_least, least);
    EXPECT_EQ(n_least, tr.expert_wanted[least]);
    // The "busiest ... idle N of 256" line wraps inside the panel instead of running past it.
    const std::string* sum = drawn_line(r, "load summary");
    ASSERT_NE(sum, nullptr) << r.out;
    float x = 0, y = 0, w = 0, h = 0;
    ASSERT_EQ(std::sscanf(sum->c_str(), "load summary %f %f %f %f", &x, &y, &w, &h), 4);
    ASSERT_TRUE(r.panels.count("Expert load")) << r.out;
    const Rect panel = r.panels.at("Expert load");
    EXPECT_LE(x + w, static_cast<float>(panel.x + panel.w)) << *sum;
    EXPECT_GT(w, 0.0f);
}

// The overview's "overview load" report: the map's size, place, cell size, most loaded ratio
// and the top of its colour scale.
struct OverviewLoad {
    int rows = 0, cols = 0;
    float x0 = 0, y0 = 0, cw = 0, ch = 0, max_ratio = 0, top = 0;
};
bool overview_load(const RunResult& r, OverviewLoad* o) {
    const std::string* load = drawn_line(r, "overview load");
    return load != nullptr && std::sscanf(load->c_str(), "overview load %d x %d at %f %f cell %f x %f max %f top %f", &o->rows,
                                          &o->cols, &o->x0, &o->y0, &o->cw, &o->ch, &o->max_ratio, &o->top) == 8;
}

// Dense routing (every expert gets every token) is perfectly balanced: the overview must show an
// even mid-colour field, 1.0x the even share on a scale to 2.0x (scaled to its own maximum it was
// one block of the brightest colour).
TEST_F(Views, OverviewOfABalancedModelIsAnEvenMidColour) {
    const fs::path settings = dir_ / "overview_dense.json";
    std::ofstream(settings) << R"({"panels": {"Model overview": true}})";
    RunResult r;
    const Image img = screenshot("overview_dense.png", "--random-model " + random_spec(64, 6, 8, 5) + " --scheme soft --text " +
                                                           quote(kText) + " --size 1920x1080 --settings " +
                                                           quote(settings.string()),
                                 &r);
    OverviewLoad o;
    ASSERT_TRUE(overview_load(r, &o)) << r.out;
    EXPECT_NEAR(o.max_ratio, 1.0, 1e-3);
    EXPECT_NEAR(o.top, 2.0, 1e-3);
    for (int l : {0, o.rows - 1})
        for (int e : {0, o.cols / 2, o.cols - 1})
            EXPECT_TRUE(near(pixel(img, o.x0 + o.cw * (e + 0.5f), o.y0 + o.ch * (l + 0.5f)), viridis(0.5f), 6))
                << "layer " << l << " expert " << e << " is not the middle colour";
}

// The overview: the layers x experts matrix's brightest cell is the most loaded (layer, expert),
// and the tokens x layers map shows each token's first choice in its expert's colour.
TEST_F(Views, OverviewMatricesShowLoadAndFirstChoices) {
    constexpr int kSeed = 5, kN = 64, kLayers = 6;
    const fs::path settings = dir_ / "overview.json";
    std::ofstream(settings) << R"({"panels": {"Model overview": true}})";
    RunResult r;
    const Image img = screenshot("overview.png", "--random-model " + random_spec(kN, kLayers, 8, kSeed) + " --text " +
                                                     quote(kText) + " --size 1920x1080 --settings " + quote(settings.string()),
                                 &r);
    const moe::LmForward fwd = route_text(random_config(kN, kLayers, 8), kSeed);
    ASSERT_EQ(static_cast<int>(fwd.traces.size()), kLayers);

    OverviewLoad o;
    ASSERT_TRUE(overview_load(r, &o)) << r.out;
    EXPECT_EQ(o.rows, kLayers);
    EXPECT_EQ(o.cols, kN);
    int best_l = 0, best_e = 0;
    double best = -1;
    for (int l = 0; l < kLayers; ++l) {
        const moe::RoutingTrace& tr = fwd.traces[static_cast<size_t>(l)];
        double kept = 0;
        for (int v : tr.expert_load) kept += v;
        for (int e = 0; e < kN; ++e) {
            const double ratio = tr.expert_load[e] / (kept / kN);
            if (ratio > best) {
                best = ratio;
                best_l = l;
                best_e = e;
            }
        }
    }
    EXPECT_NEAR(o.max_ratio, best, 1e-3);
    EXPECT_NEAR(o.top, std::max(2.0, best), 1e-3) << "the colours run to at least twice the even share";
    EXPECT_TRUE(near(pixel(img, o.x0 + o.cw * (best_e + 0.4f), o.y0 + o.ch * (best_l + 0.5f)),
                     viridis(static_cast<float>(best / std::max(2.0, best))), 6))
        << "the most loaded cell (layer " << best_l << ", E" << best_e << ") is not drawn at its place on the scale";

    const std::string* top = drawn_line(r, "overview top1");
    ASSERT_NE(top, nullptr) << r.out;
    int rows = 0, n_tok = 0;
    float x0 = 0, y0 = 0, cw = 0, ch = 0;
    ASSERT_EQ(std::sscanf(top->c_str(), "overview top1 %d x %d at %f %f cell %f x %f", &rows, &n_tok, &x0, &y0, &cw, &ch), 6);
    EXPECT_EQ(n_tok, static_cast<int>(std::string(kText).size()));
    int checked = 0, matching = 0;
    for (int l = 0; l < kLayers; ++l)
        for (int t = 1; t < n_tok; ++t) {  // token 0 is the current one: framed
            const moe::RoutingTrace& tr = fwd.traces[static_cast<size_t>(l)];
            const int e = tr.token_pairs(t)[0].expert;
            ++checked;
            matching += near(pixel(img, x0 + cw * (t + 0.4f), y0 + ch * (l + 0.5f)), expert_rgb(e), 10) ? 1 : 0;
        }
    EXPECT_GE(matching, checked * 95 / 100) << matching << " of " << checked << " (token, layer) cells in the top-1 colour";
}

}  // namespace

namespace {

// CJK and emoji: every character of the text is drawn from a real glyph (none is the font's '?'),
// and different characters look different (the '?' fallback would draw them all alike).
TEST_F(Views, CjkAndEmojiTokensAreDrawnWithRealGlyphs) {
    for (const char* f : {"/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
                          "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"})
        if (!fs::exists(f)) GTEST_SKIP() << f << " is missing: install fonts-noto-cjk and fonts-symbola (scripts/install-deps.sh)";
    const std::string text = "猫が座った 🐱 中文 😀 한국어";
    RunResult r;
    const Image img = screenshot("cjk.png", "--text " + quote(text) + " --size 1920x1080", &r);
    ASSERT_GT(img.w, 0) << r.err;
    struct Glyph {
        std::string utf8;
        float x = 0, y = 0, w = 0, h = 0;
    };
    std::vector<Glyph> glyphs;
    // The byte LM's tokens are bytes: the token that completes a character (its last byte, not
    // "partial") shows the whole character; the ones before it show their bytes.
    for (const std::string& line : r.drawn) {
        Glyph g;
        int t = 0, missing = -1, partial = -1, used = 0;
        if (std::sscanf(line.c_str(), "strip piece %d %f %f %f %f missing %d partial %d %n", &t, &g.x, &g.y, &g.w, &g.h,
                        &missing, &partial, &used) < 7)
            continue;
        g.utf8 = line.substr(static_cast<size_t>(used));
        EXPECT_EQ(missing, 0) << "token " << t << " is drawn with a '?'";
        if (partial == 0 && !g.utf8.empty() && static_cast<unsigned char>(g.utf8[0]) >= 0x80) glyphs.push_back(g);
    }
    // 猫 が 座 っ た 🐱 中 文 😀 한 국 어: every multi-byte character of the text.
    ASSERT_EQ(glyphs.size(), 12u) << r.out;
    auto patch_diff = [&](const Glyph& a, const Glyph& b) {
        const int w = static_cast<int>(std::min(a.w, b.w)), h = static_cast<int>(std::min(a.h, b.h));
        double sum = 0;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const Rgb pa = pixel(img, a.x + x, a.y + y), pb = pixel(img, b.x + x, b.y + y);
                sum += std::abs(pa.r - pb.r) + std::abs(pa.g - pb.g) + std::abs(pa.b - pb.b);
            }
        return sum / (3.0 * std::max(1, w * h));
    };
    for (const Glyph& g : glyphs) {
        const Rect box{static_cast<int>(g.x), static_cast<int>(g.y), std::max(1, static_cast<int>(g.w)), static_cast<int>(g.h)};
        EXPECT_GT(region_stddev(img, box), 10.0) << "'" << g.utf8 << "' left no ink";
    }
    for (size_t i = 0; i < glyphs.size(); ++i)
        for (size_t j = i + 1; j < glyphs.size(); ++j)
            EXPECT_GT(patch_diff(glyphs[i], glyphs[j]), 3.0) << "'" << glyphs[i].utf8 << "' and '" << glyphs[j].utf8
                                                             << "' are drawn alike (a '?' fallback?)";
}

}  // namespace

namespace {

// A one-frame screenshot (what slides and bench_views take) draws the visible-space glyph, not
// '?': the atlas has it from the start instead of gaining it after the first frame.
TEST_F(Views, OneFrameScreenshotDrawsVisibleSpaces) {
    const fs::path png = dir_ / "one.png";
    const RunResult r = run("--screenshot " + quote(png.string()) + " --frames 1 --text 'a b\tc d' --size 1280x720");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    int n_pieces = 0, n_spaces = 0;
    for (const std::string& line : r.drawn) {
        int t = 0, missing = -1, partial = -1, used = 0;
        float x = 0, y = 0, w = 0, h = 0;
        if (std::sscanf(line.c_str(), "strip piece %d %f %f %f %f missing %d partial %d%n", &t, &x, &y, &w, &h, &missing,
                        &partial, &used) < 7)
            continue;
        ++n_pieces;
        if (line.substr(static_cast<size_t>(used)) == "  ") ++n_spaces;  // the separator, then the token's byte
        EXPECT_EQ(missing, 0) << "token " << t << " is drawn with a '?' on the first frame: " << line;
    }
    EXPECT_EQ(n_pieces, 7) << r.out;
    EXPECT_EQ(n_spaces, 2) << r.out;
}

}  // namespace

namespace {

std::set<int> column_marks(const RunResult& r) {
    std::set<int> marks;
    for (const std::string& line : r.drawn) {
        int e = -1;
        if (std::sscanf(line.c_str(), "column mark E%d", &e) == 1) marks.insert(e);
    }
    return marks;
}

// At 256 experts a heatmap column is ~2 px: zoomed to 32 of them (the settings' range, as Ctrl+wheel
// leaves it) each cell is wide, shows its own probability's colour at its zoomed place, and the
// chosen marks are the trace's; unzoomed, the header marks every expert the current token chose.
TEST_F(Views, HeatmapZoomsToAColumnRangeAt256Experts) {
    constexpr int kSeed = 5, kN = 256, kFirst = 100, kCols = 32;
    const std::string args = "--random-model " + random_spec(kN, 2, 8, kSeed) + " --text " + quote(kText) +
                             " --token 0 --size 1920x1080";
    const fs::path settings = dir_ / "zoom.json";
    std::ofstream(settings) << "{\"heatmap_first_column\": " << kFirst << ", \"heatmap_columns\": " << kCols << "}";
    RunResult zoomed, whole;
    const Image img = screenshot("zoomed.png", args + " --settings " + quote(settings.string()), &zoomed);
    screenshot("whole.png", args, &whole);
    ASSERT_GT(img.w, 0) << zoomed.err;

    const moe::LmForward fwd = route_text(random_config(kN, 2, 8), kSeed);
    const moe::RoutingTrace& tr = fwd.traces[0];
    const float p_max = tr.probs.maxCoeff();
    std::set<int> chosen0, chosen0_in_range;
    for (const moe::RoutedPair& p : tr.token_pairs(0)) {
        chosen0.insert(p.expert);
        if (p.expert >= kFirst && p.expert < kFirst + kCols) chosen0_in_range.insert(p.expert);
    }
    EXPECT_EQ(column_marks(whole), chosen0) << whole.out;
    EXPECT_EQ(column_marks(zoomed), chosen0_in_range) << zoomed.out;

    const std::string* line = drawn_line(zoomed, "heatmap ");
    ASSERT_NE(line, nullptr) << zoomed.out;
    int n_tok = 0, n_exp = 0, first = 0, last = 0, shader = -1, c0 = -1, c1 = -1;
    float x0 = 0, y0 = 0, cw = 0, ch = 0;
    ASSERT_EQ(std::sscanf(line->c_str(), "heatmap %d x %d at %f %f cell %f x %f rows %d..%d shader %d cols %d..%d", &n_tok,
                          &n_exp, &x0, &y0, &cw, &ch, &first, &last, &shader, &c0, &c1),
              11)
        << *line;
    EXPECT_EQ(c0, kFirst);
    EXPECT_EQ(c1, kFirst + kCols - 1);
    EXPECT_GE(cw, 8.0f) << "zoomed cells must be wide enough to read";
    const std::string* whole_line = drawn_line(whole, "heatmap ");
    ASSERT_NE(whole_line, nullptr);
    EXPECT_NE(whole_line->find("cols 0..255"), std::string::npos) << *whole_line;

    std::set<std::pair<int, int>> chosen;
    for (const moe::RoutedPair& p : tr.pairs) chosen.insert({p.token, p.expert});
    int checked = 0, matching = 0, marked = 0, marks = 0;
    for (int t = 0; t < 6; ++t)
        for (int e = kFirst; e < kFirst + kCols; ++e) {
            const float cx = x0 + cw * (static_cast<float>(e - kFirst) + 0.5f), cy = y0 + ch * (static_cast<float>(t) + 0.5f);
            if (chosen.count({t, e})) {
                // Outlined in white: the cell's left edge is bright.
                ++marks;
                const Rgb edge = pixel(img, x0 + cw * static_cast<float>(e - kFirst) + 0.5f, cy);
                marked += (edge.r + edge.g + edge.b) / 3 > 180 ? 1 : 0;
                continue;
            }
            ++checked;
            matching += near(pixel(img, cx, cy), viridis(tr.probs(t, e) / p_max), 6) ? 1 : 0;
        }
    EXPECT_GE(matching, checked * 95 / 100) << matching << " of " << checked << " zoomed cells in their colour";
    EXPECT_GT(marks, 0) << "no chosen cell in the rows checked: the case checks nothing";
    EXPECT_EQ(marked, marks) << "every chosen cell in the zoomed range is outlined";
}

}  // namespace

namespace {

// The training lab's plane, drawn per pixel by shaders/mix2d.frag from the live weights, read
// back at the centres of a 24 x 24 grid: each pixel is the colour of the expert the trainer's own
// CPU routing (Mix2dTrainer::sample_regions, same seed, same step) picks there, shaded by its
// gate. Points on a border (white) and the few where float rounding flips a close choice aside,
// nearly all must match.
TEST_F(Views, Mix2dShaderColoursEachPointByTheTrainersRouting) {
    const fs::path settings = dir_ / "lab.json";
    std::ofstream(settings) << R"({"panels": {"Training lab": true}})";
    RunResult r;
    const Image img = screenshot("lab.png", "--size 1920x1080 --settings " + quote(settings.string()), &r);
    ASSERT_GT(img.w, 0) << r.err;
    const std::string* line = drawn_line(r, "mix2d ");
    ASSERT_NE(line, nullptr) << r.out;
    float x0 = 0, y0 = 0, side = 0;
    int step = -1, show = -1;
    ASSERT_EQ(std::sscanf(line->c_str(), "mix2d shader at %f %f side %f step %d show %d", &x0, &y0, &side, &step, &show), 5)
        << "the plane was not drawn by the shader: " << *line;
    EXPECT_EQ(show, 0);
    ASSERT_GE(side, 100.0f);

    moe::Mix2dTrainer tr{moe::Mix2dConfig{}};  // the lab's trainer, replayed to the drawn step
    for (int i = 0; i < step; ++i) tr.step();
    constexpr int kGrid = 24;
    const moe::Mix2dRegions reg = tr.sample_regions(kGrid, kGrid);
    int checked = 0, matching = 0;
    std::set<int> experts_seen;
    for (int gy = 0; gy < kGrid; ++gy)
        for (int gx = 0; gx < kGrid; ++gx) {
            const size_t i = static_cast<size_t>(gy * kGrid + gx);
            const Rgb got = pixel(img, x0 + side * (static_cast<float>(gx) + 0.5f) / kGrid,
                                  y0 + side * (static_cast<float>(gy) + 0.5f) / kGrid);
            if (got.r > 240 && got.g > 240 && got.b > 240) continue;  // a border between two experts
            ++checked;
            const Rgb c = expert_rgb(reg.expert[i]);
            const float a = 0.35f + 0.65f * std::clamp(reg.gate[i], 0.0f, 1.0f);
            const Rgb want{static_cast<int>(static_cast<float>(c.r) * a), static_cast<int>(static_cast<float>(c.g) * a),
                           static_cast<int>(static_cast<float>(c.b) * a)};
            if (near(got, want, 8)) {
                ++matching;
                experts_seen.insert(reg.expert[i]);
            }
        }
    EXPECT_GE(checked, kGrid * kGrid * 8 / 10) << "most points are inside a region, not on a border";
    EXPECT_GE(matching, checked * 95 / 100) << matching << " of " << checked << " points in their expert's colour (step " << step << ")";
    EXPECT_GE(experts_seen.size(), 2u) << "the plane is split between experts";
}

}  // namespace
