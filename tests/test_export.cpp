// The exporters: CSV numbers are exactly the trace's, PNGs decode with the right size and the
// bars where they should be, SVGs are well-formed, and a failed write loses nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/teach/export.h"
#include "core/io/file_io.h"
#include "core/engine/routing.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

#include "xml_check.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// RFC 4180: a quoted field may hold commas, line breaks and doubled quotes.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> cells;
    std::string cell;
    bool quoted = false, any = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') cell += '"', ++i;
            else if (c == '"') quoted = false;
            else cell += c;
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            cells.push_back(std::move(cell));
            cell.clear();
        } else if (c == '\n') {
            cells.push_back(std::move(cell));
            cell.clear();
            rows.push_back(std::move(cells));
            cells.clear();
            any = false;
            continue;
        } else {
            cell += c;
        }
        any = true;
    }
    if (any) {
        cells.push_back(std::move(cell));
        rows.push_back(std::move(cells));
    }
    return rows;
}

RoutingTrace switch_trace_with_drops(TokenRows* tokens) {
    // Skewed logits: expert 2 is everyone's favourite, so capacity overflows.
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    Mat logits(24, 6);  // (n_tokens, n_experts)
    for (int t = 0; t < 24; ++t)
        for (int e = 0; e < 6; ++e) logits(t, e) = nd(rng) + (e == 2 ? 1.5f : 0.0f);
    RouterConfig rc;
    rc.scheme = Scheme::Switch;
    rc.n_experts = 6;
    rc.k = 1;
    rc.capacity_factor = 1.0f;
    rc.drop_policy = DropPolicy::Position;
    const std::string text = "Experts, route me please";
    const std::vector<TokenId> ids(text.begin(), text.end());  // the byte model: a token is its byte
    *tokens = token_rows(*make_byte_tokenizer(), ids);
    return route(rc, logits);
}

struct Decoded {
    int w = 0, h = 0;
    std::vector<uint8_t> px;
    Rgba at(int x, int y) const {
        const uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 4];
        return {p[0], p[1], p[2], p[3]};
    }
};

Decoded decode(const std::string& png) {
    Decoded d;
    int n = 0;
    unsigned char* p = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()), static_cast<int>(png.size()), &d.w, &d.h, &n, 4);
    if (p) {
        d.px.assign(p, p + static_cast<size_t>(d.w) * d.h * 4);
        stbi_image_free(p);
    }
    return d;
}

fs::path temp_dir(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("moelab_test_export_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

TEST(ExportLoad, CsvMatchesTheTrace) {
    TokenRows tokens;
    const RoutingTrace tr = switch_trace_with_drops(&tokens);
    ASSERT_GT(tr.stats.n_dropped, 0) << "the fixture should overflow capacity";
    const auto rows = parse_csv(load_csv(tr));
    ASSERT_EQ(rows.size(), size_t(1 + tr.n_experts));
    EXPECT_EQ(rows[0], (std::vector<std::string>{"expert", "wanted", "kept", "dropped", "capacity"}));
    for (int e = 0; e < tr.n_experts; ++e) {
        ASSERT_EQ(rows[1 + e].size(), 5u);
        EXPECT_EQ(std::stoi(rows[1 + e][0]), e);
        EXPECT_EQ(std::stoi(rows[1 + e][1]), tr.expert_wanted[e]);
        EXPECT_EQ(std::stoi(rows[1 + e][2]), tr.expert_load[e]);
        EXPECT_EQ(std::stoi(rows[1 + e][3]), tr.expert_dropped[e]);
        EXPECT_EQ(std::stoi(rows[1 + e][4]), tr.capacity);
    }
}

TEST(ExportHeatmap, CsvNumbersAreExactlyTheTraceFloats) {
    TokenRows tokens;
    const RoutingTrace tr = switch_trace_with_drops(&tokens);
    const auto rows = parse_csv(heatmap_csv(tr, tokens));
    ASSERT_EQ(rows.size(), size_t(1 + tr.n_tokens * tr.n_experts));
    int chosen = 0, dropped = 0;
    for (size_t r = 1; r < rows.size(); ++r) {
        const auto& c = rows[r];
        ASSERT_EQ(c.size(), 10u) << r;
        const int t = std::stoi(c[0]), e = std::stoi(c[3]);
        EXPECT_EQ(std::stoi(c[1]), tokens.ids[t]);
        EXPECT_EQ(c[2], tokens.pieces[t]);
        EXPECT_EQ(std::strtof(c[4].c_str(), nullptr), tr.logits(t, e));  // bit-exact round trip
        EXPECT_EQ(std::strtof(c[5].c_str(), nullptr), tr.probs(t, e));
        if (c[6] == "1") {
            ++chosen;
            bool found = false;
            for (const RoutedPair& p : tr.token_pairs(t)) {
                if (p.expert != e) continue;
                found = true;
                EXPECT_EQ(std::strtof(c[8].c_str(), nullptr), p.gate);
                EXPECT_EQ(c[9] == "1", p.dropped);
                EXPECT_EQ(std::stoi(c[7]), p.rank);
            }
            EXPECT_TRUE(found) << "token " << t << " expert " << e;
        }
        dropped += c[9] == "1";
    }
    EXPECT_EQ(chosen, tr.stats.n_pairs);
    EXPECT_EQ(dropped, tr.stats.n_dropped);
}

TEST(ExportLoad, PngHasBarsInExpertColoursAndOverflowInRed) {
    TokenRows tokens;
    const RoutingTrace tr = switch_trace_with_drops(&tokens);
    const Plot p = load_plot(tr, "test");
    const Decoded d = decode(export_bytes(p, load_csv(tr), ExportFormat::Png));
    ASSERT_EQ(d.w, p.width);
    ASSERT_EQ(d.h, p.height);
    // Layout of core/teach/plot.cpp: plot area x in [72, width-150] (a legend is shown), y in [44, height-56].
    const float L = 72, R = static_cast<float>(p.width - 150), B = static_cast<float>(p.height - 56), T = 44;
    int max_wanted = tr.capacity;
    for (int w : tr.expert_wanted) max_wanted = std::max(max_wanted, w);
    const float y_hi = max_wanted * 1.08f;
    for (int e = 0; e < tr.n_experts; ++e) {
        const int x = static_cast<int>(L + (e + 0.5f) / tr.n_experts * (R - L));
        if (tr.expert_load[e] > 0) {
            const int y = static_cast<int>(B - 0.5f * tr.expert_load[e] / y_hi * (B - T));
            EXPECT_EQ(d.at(x, y), expert_color(e)) << "expert " << e;
        } else {
            EXPECT_EQ(d.at(x, static_cast<int>(B) - 3), (Rgba{255, 255, 255, 255})) << "expert " << e << " is empty";
        }
        if (tr.expert_dropped[e] > 1) {
            const float mid = tr.expert_load[e] + 0.5f * tr.expert_dropped[e];
            const Rgba c = d.at(x + 3, static_cast<int>(B - mid / y_hi * (B - T)));
            EXPECT_EQ(c, kColorDropped) << "expert " << e << " overflow";
        }
    }
    std::string why;
    EXPECT_TRUE(test::xml_well_formed(render_svg(p), &why)) << why;
}

TEST(ExportHeatmap, PngAndSvgRender) {
    TokenRows tokens;
    const RoutingTrace tr = switch_trace_with_drops(&tokens);
    const Plot p = heatmap_plot(tr, tokens, "heat");
    const Decoded d = decode(encode_png(render_image(p)));
    EXPECT_EQ(d.w, p.width);
    EXPECT_EQ(d.h, p.height);
    std::string why;
    const std::string svg = render_svg(p);
    EXPECT_TRUE(test::xml_well_formed(svg, &why)) << why;
    EXPECT_NE(svg.find("\xE2\x90\xA3"), std::string::npos);  // the space token's visible label
}

TEST(ExportTraining, CsvAndPlots) {
    TrainingCurves c;
    c.add(1, 0.5f, 1.2f, {10, 0, 2});
    c.add(2, 0.25f, 0.8f, {6, 3, 3});
    c.add(3, 0.125f, 0.1f, {4, 4, 4});
    const auto rows = parse_csv(training_csv(c));
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0], (std::vector<std::string>{"step", "loss", "load_cv", "load_0", "load_1", "load_2"}));
    EXPECT_EQ(std::strtof(rows[2][1].c_str(), nullptr), 0.25f);
    EXPECT_EQ(std::strtof(rows[1][2].c_str(), nullptr), 1.2f);
    EXPECT_EQ(rows[1][3], "10");
    const Plot lp = training_load_plot(c, "load");
    ASSERT_EQ(lp.lines.size(), 3u);
    EXPECT_FLOAT_EQ(lp.lines[0].ys[0], 10.0f / 12.0f);
    EXPECT_FLOAT_EQ(lp.lines[2].ys[2], 1.0f / 3.0f);
    std::string why;
    EXPECT_TRUE(test::xml_well_formed(render_svg(training_loss_plot(c, "loss")), &why)) << why;
}

// The collapse phase of a long run must still be there when the cure is exported: past
// kMaxPoints the curves thin out, they are never cut at the front.
TEST(ExportTraining, LongRunsKeepTheirStartAndThinOut) {
    TrainingCurves c;
    const int n = static_cast<int>(TrainingCurves::kMaxPoints) * 3 + 7;
    for (int s = 1; s <= n; ++s) c.add(s, 1.0f / static_cast<float>(s), 0.5f, {s % 3, 1});
    ASSERT_GT(c.size(), 0u);
    EXPECT_EQ(c.step.front(), 1);
    EXPECT_LE(c.size(), TrainingCurves::kMaxPoints);
    EXPECT_GE(c.size(), TrainingCurves::kMaxPoints / 4);
    EXPECT_GE(c.step.back(), n - c.stride);
    for (size_t i = 1; i < c.size(); ++i) ASSERT_EQ(c.step[i] - c.step[i - 1], c.stride) << i;
    EXPECT_FLOAT_EQ(c.loss[1], 1.0f / static_cast<float>(1 + c.stride));
    // The picture is thinned for drawing only, and spans the whole run.
    const Plot p = training_loss_plot(c, "loss");
    ASSERT_EQ(p.lines.size(), 2u);
    EXPECT_LE(p.lines[0].xs.size(), 2001u);
    EXPECT_EQ(p.lines[0].xs.front(), 1.0f);
    EXPECT_EQ(p.lines[0].xs.back(), static_cast<float>(c.step.back()));
}

TEST(ExportTraining, LegendNamesTheLossItPlots) {
    TrainingCurves c;
    c.loss_name = "loss (cross-entropy, nats)";
    c.add(1, 2.5f, 0.3f, {});
    c.add(2, 2.4f, 0.3f, {});
    const Plot p = training_loss_plot(c, "fine-tune");
    ASSERT_FALSE(p.legend.empty());
    EXPECT_EQ(p.legend[0].name, "loss (cross-entropy, nats)");
    EXPECT_EQ(TrainingCurves{}.loss_name, "loss (MSE)");  // the 2D mixture's regression loss
}

TEST(ExportFiles, WritesAllThreeFormats) {
    TokenRows tokens;
    const RoutingTrace tr = switch_trace_with_drops(&tokens);
    const fs::path dir = temp_dir("all");
    const auto paths = export_all(load_plot(tr, "x"), load_csv(tr), (dir / "new_sub").string(), "load");
    ASSERT_EQ(paths.size(), 3u);
    EXPECT_EQ(decode(read_file(paths[0])).w, 800);
    std::string why;
    EXPECT_TRUE(test::xml_well_formed(read_file(paths[1]), &why)) << why;
    EXPECT_EQ(read_file(paths[2]), load_csv(tr));
    export_file(load_plot(tr, "x"), load_csv(tr), (dir / "one.SVG").string());
    EXPECT_TRUE(fs::exists(dir / "one.SVG"));
    fs::remove_all(dir);
}

TEST(ExportFiles, BadPathsThrowAndLoseNothing) {
    TokenRows tokens;
    const RoutingTrace tr = switch_trace_with_drops(&tokens);
    const fs::path dir = temp_dir("bad");
    const std::string keep = (dir / "keep.png").string();
    write_file_atomic(keep, "old bytes");
    try {
        export_file(load_plot(tr, "x"), load_csv(tr), (dir / "keep.bmp").string());
        FAIL() << "an unknown extension must throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(".png, .svg or .csv"), std::string::npos) << e.what();
    }
    // The parent "folder" is a file: the write fails, naming the path.
    const std::string blocked = (dir / "keep.png" / "x.png").string();
    try {
        export_file(load_plot(tr, "x"), load_csv(tr), blocked);
        FAIL() << "writing under a file must throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("x.png"), std::string::npos) << e.what();
    }
    EXPECT_THROW(export_all(load_plot(tr, "x"), load_csv(tr), blocked, "s"), Error);
    EXPECT_EQ(read_file(keep), "old bytes");
    fs::remove_all(dir);
}

TEST(ExportCharts, LineAndBarChartsCsv) {
    LineChart lc;
    lc.x_label = "devices G";
    lc.xs = {1, 2, 4};
    lc.names = {"K = 8", "K = 1"};
    lc.ys = {{0, 1.5f, 2.25f}, {0, 0.1875f, 0.28125f}};
    const auto rows = parse_csv(line_chart_csv(lc));
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0][1], "K = 8");
    EXPECT_EQ(std::strtof(rows[3][2].c_str(), nullptr), 0.28125f);
    BarChart bc;
    bc.categories = {"mixtral, 8x7b", "deepseek"};
    bc.names = {"total", "active"};
    bc.values = {{46.7, 671}, {12.9, 37}};
    const std::string csv = bar_chart_csv(bc);
    EXPECT_NE(csv.find("\"mixtral, 8x7b\""), std::string::npos);  // quoted because of the comma
    const Plot p = bar_chart_plot(bc);
    EXPECT_EQ(p.bars.size(), 4u);
    std::string why;
    EXPECT_TRUE(test::xml_well_formed(render_svg(p), &why)) << why;
}

TEST(ExportHeatmap, RowsAreTheTokenizersPiecesNotBytes) {
    // A BPE model's tokens: whole words, a piece with a comma and quotes (CSV quoting), a token
    // ending inside a character, a long special token; the rows name them, the CSV holds them.
    TokenRows rows;
    rows.ids = {464, 11, 50279, 171};
    rows.pieces = {"\xE2\x90\xA3the", "a,\"b\"", "<|endoftext|> and a long tail", "<E2 80>"};
    RouterConfig rc;
    rc.n_experts = 4;
    rc.k = 2;
    Mat logits(4, 4);
    for (int t = 0; t < 4; ++t)
        for (int e = 0; e < 4; ++e) logits(t, e) = static_cast<float>((t * 3 + e * 5) % 7);
    const RoutingTrace tr = route(rc, logits);
    const auto csv = parse_csv(heatmap_csv(tr, rows));
    ASSERT_EQ(csv.size(), 1u + 16u);
    EXPECT_EQ(csv[0], (std::vector<std::string>{"token", "id", "piece", "expert", "logit", "prob", "chosen", "rank",
                                                "gate", "dropped"}));
    for (size_t r = 1; r < csv.size(); ++r) {
        ASSERT_EQ(csv[r].size(), 10u) << r;
        const int t = std::stoi(csv[r][0]);
        EXPECT_EQ(std::stoi(csv[r][1]), rows.ids[static_cast<size_t>(t)]);
        EXPECT_EQ(csv[r][2], rows.pieces[static_cast<size_t>(t)]);
    }
    const Plot p = heatmap_plot(tr, rows, "heat");
    ASSERT_EQ(p.heatmap.row_labels.size(), 4u);
    EXPECT_EQ(p.heatmap.row_labels[0], "0 \xE2\x90\xA3the");
    EXPECT_EQ(p.heatmap.row_labels[3], "3 <E2 80>");
    EXPECT_EQ(p.heatmap.row_labels[2], "2 <|endoftext|> an...") << "a long piece is cut at 16 characters";
}

}  // namespace
}  // namespace moe
