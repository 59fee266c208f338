// Trace export (core/io/trace_io.h): every output is parsed back and compared with the trace.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/engine/routing.h"
#include "core/io/trace_io.h"

namespace {

using nlohmann::json;

// A small RFC 4180 reader: fields split on commas, quotes group and "" escapes a quote.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool in_quotes = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_quotes) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') { field += '"'; ++i; }
            else if (c == '"') in_quotes = false;
            else field += c;
        } else if (c == '"') {
            in_quotes = true;
        } else if (c == ',') {
            row.push_back(field);
            field.clear();
        } else if (c == '\n') {
            row.push_back(field);
            field.clear();
            rows.push_back(row);
            row.clear();
        } else {
            field += c;
        }
    }
    EXPECT_TRUE(field.empty() && row.empty()) << "CSV must end with a newline";
    return rows;
}

// A real trace with drops: top-2 Mixtral routing, position-priority capacity 1.0, 12 tokens.
moe::RoutingTrace make_trace() {
    moe::RouterConfig rc;
    rc.scheme = moe::Scheme::TopKMixtral;
    rc.n_experts = 4;
    rc.k = 2;
    rc.capacity_factor = 1.0f;
    rc.drop_policy = moe::DropPolicy::Position;
    moe::Mat logits(12, 4);  // (n_tokens, n_experts)
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int t = 0; t < 12; ++t)
        for (int e = 0; e < 4; ++e) logits(t, e) = normal(rng) + (e == 0 ? 1.5f : 0.0f);  // expert 0 is popular: it overflows
    return moe::route(rc, logits);
}

moe::TraceContext make_context(int n_tokens) {
    moe::TraceContext ctx;
    const std::vector<std::string> words = {"a", ",", "\"q\"", "\n", "b c", "d", "e", "f", "g", "h", "i", "\xe2"};
    for (int t = 0; t < n_tokens; ++t) {
        ctx.token_ids.push_back(100 + t);
        ctx.token_text.push_back(words[static_cast<size_t>(t) % words.size()]);
    }
    ctx.extra["seed"] = 7;
    return ctx;
}

}  // namespace

TEST(TraceIo, TraceHasDropsToExport) {
    const moe::RoutingTrace t = make_trace();
    ASSERT_GT(t.stats.n_dropped, 0) << "the test trace should exercise dropped pairs";
    ASSERT_EQ(static_cast<int>(t.pairs.size()), 24);
}

TEST(TraceIo, JsonRoundTrip) {
    const moe::RoutingTrace t = make_trace();
    const moe::TraceContext ctx = make_context(t.n_tokens);
    const json j = json::parse(moe::trace_to_json(t, ctx).dump());
    EXPECT_EQ(j.at("scheme"), "topk_mixtral");
    EXPECT_EQ(j.at("n_tokens").get<int>(), t.n_tokens);
    EXPECT_EQ(j.at("n_experts").get<int>(), t.n_experts);
    EXPECT_EQ(j.at("capacity").get<int>(), t.capacity);
    EXPECT_EQ(j.at("expert_load").get<std::vector<int>>(), t.expert_load);
    EXPECT_EQ(j.at("expert_dropped").get<std::vector<int>>(), t.expert_dropped);
    EXPECT_EQ(j.at("token_begin").get<std::vector<int>>(), t.token_begin);
    ASSERT_EQ(j.at("pairs").size(), t.pairs.size());
    for (size_t i = 0; i < t.pairs.size(); ++i) {
        const json& p = j.at("pairs")[i];
        EXPECT_EQ(p.at("token").get<int>(), t.pairs[i].token);
        EXPECT_EQ(p.at("expert").get<int>(), t.pairs[i].expert);
        EXPECT_EQ(p.at("rank").get<int>(), t.pairs[i].rank);
        EXPECT_EQ(p.at("gate").get<float>(), t.pairs[i].gate);  // exact
        EXPECT_EQ(p.at("score").get<float>(), t.pairs[i].score);
        EXPECT_EQ(p.at("dropped").get<bool>(), t.pairs[i].dropped);
    }
    for (int r = 0; r < t.n_tokens; ++r)
        for (int e = 0; e < t.n_experts; ++e) {
            EXPECT_EQ(j.at("logits")[r][e].get<float>(), t.logits(r, e));
            EXPECT_EQ(j.at("probs")[r][e].get<float>(), t.probs(r, e));
        }
    const json& s = j.at("stats");
    EXPECT_EQ(s.at("load_cv").get<float>(), t.stats.load_cv);
    EXPECT_EQ(s.at("aux_loss").get<float>(), t.stats.aux_loss);
    EXPECT_EQ(s.at("n_dropped").get<int>(), t.stats.n_dropped);
    EXPECT_EQ(s.at("frac_dropped").get<float>(), t.stats.frac_dropped);
    EXPECT_EQ(j.at("context").at("seed").get<int>(), 7);
    EXPECT_EQ(j.at("context").at("token_ids")[3].get<int>(), 103);
    EXPECT_EQ(j.at("context").at("token_text")[2].get<std::string>(), "\"q\"");
}

TEST(TraceIo, PairsCsvRoundTrip) {
    const moe::RoutingTrace t = make_trace();
    const moe::TraceContext ctx = make_context(t.n_tokens);
    const auto rows = parse_csv(moe::trace_pairs_csv(t, ctx));
    ASSERT_EQ(rows.size(), t.pairs.size() + 1);
    EXPECT_EQ(rows[0], (std::vector<std::string>{"token", "token_id", "token_text", "expert", "rank", "gate", "score", "dropped"}));
    for (size_t i = 0; i < t.pairs.size(); ++i) {
        const auto& r = rows[i + 1];
        ASSERT_EQ(r.size(), 8u) << i;
        const moe::RoutedPair& p = t.pairs[i];
        EXPECT_EQ(std::stoi(r[0]), p.token);
        EXPECT_EQ(std::stoi(r[1]), 100 + p.token);
        EXPECT_EQ(std::stoi(r[3]), p.expert);
        EXPECT_EQ(std::stoi(r[4]), p.rank);
        EXPECT_EQ(std::stof(r[5]), p.gate);  // 9 significant digits: bit-identical
        EXPECT_EQ(std::stof(r[6]), p.score);
        EXPECT_EQ(r[7], p.dropped ? "1" : "0");
    }
    // Text: commas and quotes survive quoting; a newline becomes an escape; a raw byte stays.
    EXPECT_EQ(rows[1 + 2 * 1][2], ",");
    EXPECT_EQ(rows[1 + 2 * 2][2], "\"q\"");
    EXPECT_EQ(rows[1 + 2 * 3][2], "\\n");
    EXPECT_EQ(rows[1 + 2 * 4][2], "b c");
}

TEST(TraceIo, ExpertsCsvRoundTrip) {
    const moe::RoutingTrace t = make_trace();
    const auto rows = parse_csv(moe::trace_experts_csv(t));
    ASSERT_EQ(rows.size(), static_cast<size_t>(t.n_experts) + 1);
    EXPECT_EQ(rows[0][0], "expert");
    int kept = 0;
    for (int l : t.expert_load) kept += l;
    float share_sum = 0;
    for (int e = 0; e < t.n_experts; ++e) {
        const auto& r = rows[static_cast<size_t>(e) + 1];
        EXPECT_EQ(std::stoi(r[0]), e);
        EXPECT_EQ(std::stoi(r[1]), t.expert_load[static_cast<size_t>(e)]);
        EXPECT_EQ(std::stoi(r[2]), t.expert_wanted[static_cast<size_t>(e)]);
        EXPECT_EQ(std::stoi(r[3]), t.expert_dropped[static_cast<size_t>(e)]);
        EXPECT_EQ(std::stoi(r[4]), t.capacity);
        EXPECT_FLOAT_EQ(std::stof(r[5]), static_cast<float>(t.expert_load[static_cast<size_t>(e)]) / static_cast<float>(kept));
        share_sum += std::stof(r[5]);
    }
    EXPECT_NEAR(share_sum, 1.0f, 1e-6f);
    const auto layered = parse_csv(moe::trace_experts_csv(t, 3));
    EXPECT_EQ(layered[0][0], "layer");
    EXPECT_EQ(layered[1][0], "3");
}

TEST(TraceIo, FilesAndMultiLayerJson) {
    const moe::RoutingTrace t = make_trace();
    const auto dir = std::filesystem::temp_directory_path() / ("moelab_trace_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string base = (dir / "trace").string();
    moe::TraceContext ctx;
    ctx.layer = 2;
    ctx.include_matrices = false;
    moe::write_trace_json(base + ".json", t, ctx);
    moe::write_trace_csv(base, t, ctx);
    const json j = json::parse(moe::read_file(base + ".json"));
    EXPECT_EQ(j.at("layer").get<int>(), 2);
    EXPECT_FALSE(j.contains("logits"));
    const auto pairs = parse_csv(moe::read_file(base + ".pairs.csv"));
    EXPECT_EQ(pairs[0][0], "layer");
    EXPECT_EQ(pairs[1][0], "2");
    EXPECT_EQ(pairs[1][2], "");  // no token ids given
    EXPECT_EQ(parse_csv(moe::read_file(base + ".experts.csv")).size(), static_cast<size_t>(t.n_experts) + 1);

    const json m = moe::traces_to_json({t, t}, {1, 3});
    ASSERT_EQ(m.at("traces").size(), 2u);
    EXPECT_EQ(m.at("traces")[1].at("layer").get<int>(), 3);
    EXPECT_THROW(moe::traces_to_json({t}, {1, 3}), moe::Error);

    EXPECT_THROW(moe::write_trace_json((dir / "missing_dir" / "x.json").string(), t), moe::Error);
    std::filesystem::remove_all(dir);
}

TEST(TraceIo, ContextSizeMismatchIsAnError) {
    const moe::RoutingTrace t = make_trace();
    moe::TraceContext ctx;
    ctx.token_ids = {1, 2, 3};
    EXPECT_THROW(moe::trace_pairs_csv(t, ctx), moe::Error);
    EXPECT_THROW(moe::trace_to_json(t, ctx), moe::Error);
}

TEST(TraceIo, InvalidUtf8TokenTextStillGivesValidJson) {
    const moe::RoutingTrace t = make_trace();
    moe::TraceContext ctx = make_context(t.n_tokens);  // token 11 is a lone 0xE2 byte
    const auto dir = std::filesystem::temp_directory_path() / ("moelab_trace_u_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    moe::write_trace_json((dir / "t.json").string(), t, ctx);
    const json j = json::parse(moe::read_file((dir / "t.json").string()));
    EXPECT_EQ(j.at("context").at("token_text")[11].get<std::string>(), "\xef\xbf\xbd");  // U+FFFD
    std::filesystem::remove_all(dir);
}

// [SECTION] CLI smoke test: the built moelab-cli writes traces the core reader agrees with.
TEST(TraceIoCli, RouteAndParamsCommands) {
    const std::string cli = std::string(MOE_BINARY_DIR) + "/cli/moelab-cli";
    if (!std::filesystem::exists(cli)) GTEST_SKIP() << "moelab-cli not built at " << cli;
    const auto dir = std::filesystem::temp_directory_path() / ("moelab_cli_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string base = (dir / "t").string();
    const std::string cmd = cli + " route --n-experts 4 --k 2 --tokens 20 --capacity 1.0 --drop position --seed 5 --out " + base + " > " +
                            (dir / "out.txt").string() + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << moe::read_file((dir / "out.txt").string());
    const json j = json::parse(moe::read_file(base + ".json"));
    EXPECT_EQ(j.at("n_tokens").get<int>(), 20);
    EXPECT_EQ(j.at("n_experts").get<int>(), 4);
    EXPECT_EQ(j.at("capacity").get<int>(), 10);  // ceil(1.0 * 20 * 2 / 4)
    const auto pairs = parse_csv(moe::read_file(base + ".pairs.csv"));
    ASSERT_EQ(pairs.size(), 41u);  // header + 20 tokens x K=2
    int dropped = 0;
    for (size_t i = 1; i < pairs.size(); ++i) dropped += pairs[i][7] == "1";
    EXPECT_EQ(dropped, j.at("stats").at("n_dropped").get<int>());
    const auto experts = parse_csv(moe::read_file(base + ".experts.csv"));
    int kept = 0;
    for (size_t i = 1; i < experts.size(); ++i) kept += std::stoi(experts[i][1]);
    EXPECT_EQ(kept, 40 - dropped);

    // A bad option is a clean error (exit code 2), not a crash.
    EXPECT_EQ(WEXITSTATUS(std::system((cli + " route --k 0 > /dev/null 2>&1").c_str())), 2);
    const std::string pcmd = cli + " params " + std::string(MOE_SOURCE_DIR) + "/assets/configs/mixtral-8x7b.json --json > " + (dir / "p.json").string();
    ASSERT_EQ(std::system(pcmd.c_str()), 0);
    EXPECT_EQ(json::parse(moe::read_file((dir / "p.json").string())).at("total_params").get<int64_t>(), 46702792704LL);
    std::filesystem::remove_all(dir);
}
