// The tokenizer interface and the tokenizer.json stages on small hand-written files: the byte
// tokenizer, display pieces, UTF-8 handling, and every malformed-file and unsupported-type
// path. The real files against the reference library are in test_tokenizer_hf.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/text/hf_tokenizer.h"
#include "core/text/regex.h"
#include "core/text/tokenizer.h"
#include "core/text/utf8.h"

namespace fs = std::filesystem;
using moe::TokenId;
using nlohmann::json;

namespace {

// A tiny byte-level BPE in the style of GPT-2 / Qwen: the 256 byte characters, a few merges.
json byte_level_tokenizer() {
    json vocab = json::object();
    std::vector<std::string> chars;
    for (int b = 0; b < 256; ++b) {
        // The ByteLevel alphabet, written out independently of core/text.
        const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        static int n = 0;
        if (b == 0) n = 0;
        const char32_t cp = keep ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
        std::string s;
        moe::utf8::append(s, cp);
        chars.push_back(s);
        vocab[s] = b;
    }
    const std::string sp = chars[' '];
    vocab["he"] = 256;
    vocab["ll"] = 257;
    vocab["hell"] = 258;
    vocab["hello"] = 259;
    vocab[sp + "w"] = 260;
    json j = {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", json::array({{{"id", 261}, {"content", "<|end|>"}, {"single_word", false}, {"lstrip", false},
                                       {"rstrip", false}, {"normalized", false}, {"special", true}}})},
        {"normalizer", nullptr},
        {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
        {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
        {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
        {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                   {"vocab", vocab}, {"merges", json::array({"h e", "l l", "he ll", "hell o", sp + " w"})}}},
    };
    return j;
}

// SentencePiece-style BPE with byte fallback, as Mistral's: Prepend/Replace normalizers.
json spm_tokenizer() {
    json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
    for (int b = 0; b < 256; ++b) {
        char code[8];
        std::snprintf(code, sizeof code, "<0x%02X>", b);
        vocab[code] = 3 + b;
    }
    int id = 259;
    for (const char* t : {"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "\xE2\x96\x81hi", "a", "b"}) vocab[t] = id++;
    return {
        {"added_tokens", json::array({{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
                                      {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                      {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}})},
        {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                                            {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}})}}},
        {"pre_tokenizer", nullptr},
        {"post_processor", {{"type", "TemplateProcessing"},
                            {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
        {"decoder", {{"type", "Sequence"}, {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                                                      {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
                                                                      {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
        {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}, {"vocab", vocab},
                   {"merges", json::array({json::array({"\xE2\x96\x81", "h"}), json::array({"\xE2\x96\x81h", "i"})})}}},
    };
}

struct TempDir {
    fs::path dir = fs::temp_directory_path() / ("moelab_tok_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
                                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    TempDir() { fs::create_directories(dir); }
    ~TempDir() { fs::remove_all(dir); }
    fs::path write(const std::string& name, const std::string& text) const {
        std::ofstream(dir / name, std::ios::binary) << text;
        return dir / name;
    }
};

std::unique_ptr<moe::Tokenizer> load(const json& j) {
    TempDir t;
    return moe::load_hf_tokenizer(t.write("tokenizer.json", j.dump()));
}

// The error a file gives, as text ("" if it loads).
std::string load_error(const std::string& text) {
    TempDir t;
    try {
        moe::load_hf_tokenizer(t.write("tokenizer.json", text));
    } catch (const moe::Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(ByteTokenizer, OneIdPerByteAndBack) {
    const auto tok = moe::make_byte_tokenizer();
    const std::string with_nul("h\xC3\xA9\xFF\x00!", 6);
    const std::vector<TokenId> ids = tok->encode(with_nul, true);
    EXPECT_EQ(ids, (std::vector<TokenId>{'h', 0xC3, 0xA9, 0xFF, 0, '!'}));
    EXPECT_EQ(tok->decode(ids, false), with_nul);
    EXPECT_EQ(tok->vocab_size(), 256);
    EXPECT_FALSE(tok->is_special(0));
    EXPECT_FALSE(tok->bos_id().has_value());
    const std::vector<TokenId> bad = {65, 256};
    EXPECT_THROW(tok->decode(bad, false), moe::Error);
    EXPECT_THROW(tok->token_bytes(-1), moe::Error);
}

TEST(DisplayPieces, PartialCharactersShowTheirBytesUntilCompleted) {
    const auto tok = moe::make_byte_tokenizer();
    // "a’ b" : ’ is E2 80 99, split over three byte tokens.
    const std::vector<TokenId> ids = tok->encode("a\xE2\x80\x99 b\n\t\x01", false);
    const std::vector<std::string> p = tok->display_pieces(ids);
    ASSERT_EQ(p.size(), ids.size());
    EXPECT_EQ(p[0], "a");
    EXPECT_EQ(p[1], "<E2>");
    EXPECT_EQ(p[2], "<80>");
    EXPECT_EQ(p[3], "\xE2\x80\x99");
    EXPECT_EQ(p[4], "\xE2\x90\xA3");  // space made visible
    EXPECT_EQ(p[5], "b");
    EXPECT_EQ(p[6], "\xE2\x86\xB5");
    EXPECT_EQ(p[7], "\xE2\x87\xA5");
    EXPECT_EQ(p[8], "<01>");
    // A lead byte that is never completed is shown once, and the next token stands alone.
    const std::vector<std::string> q = tok->display_pieces(tok->encode("\xE2z\xFF", false));
    EXPECT_EQ(q, (std::vector<std::string>{"<E2>", "z", "<FF>"}));
}

// A model's padded vocabulary has ids past the tokenizer's; the app shows the model's guesses
// with display_pieces, so such an id is a piece ("<268>"), not an error that ends the frame.
TEST(DisplayPieces, IdsPastTheVocabularyShowAsTheirNumber) {
    const auto tok = moe::make_byte_tokenizer();
    const std::vector<TokenId> ids = {'a', 268, 0xE2, -1, 'b'};
    EXPECT_EQ(tok->display_pieces(ids), (std::vector<std::string>{"a", "<268>", "<E2>", "<-1>", "b"}));
}

TEST(DisplayPieces, ByteLevelBpeTokensSplitInsideACharacter) {
    // "é" (C3 A9) has no merge in the tiny vocab: two byte tokens, the second completes it.
    const auto tok = load(byte_level_tokenizer());
    const std::vector<TokenId> ids = tok->encode("hello \xC3\xA9<|end|>", false);
    ASSERT_EQ(ids, (std::vector<TokenId>{259, ' ', 0xC3, 0xA9, 261}));
    EXPECT_EQ(tok->display_pieces(ids), (std::vector<std::string>{"hello", "\xE2\x90\xA3", "<C3>", "\xC3\xA9", "<|end|>"}));
    EXPECT_EQ(tok->token_bytes(0xC3), "\xC3");
    EXPECT_TRUE(tok->is_special(261));
}

TEST(Utf8, LossyReplacesMaximalInvalidSubpartsAsRustDoes) {
    using moe::utf8::lossy;
    const std::string r = "\xEF\xBF\xBD";
    EXPECT_EQ(lossy("Hello \xF0\x90\x80World"), "Hello " + r + "World");  // Rust's own doc example
    EXPECT_EQ(lossy("\xED\xA0\x80"), r + r + r);                            // surrogate: 3 replacements
    EXPECT_EQ(lossy("\xC0\xAF"), r + r);                                    // overlong
    EXPECT_EQ(lossy("a\xE2\x82"), "a" + r);                                 // truncated at the end
    EXPECT_EQ(lossy("\xF4\x90\x80\x80"), r + r + r + r);                    // past U+10FFFF
    EXPECT_EQ(lossy("ok \xE2\x82\xAC"), "ok \xE2\x82\xAC");
    EXPECT_EQ(moe::utf8::first_invalid("ab\xC3\xA9\xC3"), 4u);
}

TEST(HfTokenizerFile, ByteLevelMergesInRankOrder) {
    const auto tok = load(byte_level_tokenizer());
    EXPECT_EQ(tok->encode("hello world", false), (std::vector<TokenId>{259, 260, 'o', 'r', 'l', 'd'}));
    EXPECT_EQ(tok->decode(tok->encode("hello world", false), false), "hello world");
    // Split on the added token first; skip_special drops it from the decode.
    const std::vector<TokenId> ids = tok->encode("he<|end|>ll", true);
    EXPECT_EQ(ids, (std::vector<TokenId>{256, 261, 257}));
    EXPECT_EQ(tok->decode(ids, true), "hell");
    EXPECT_EQ(tok->decode(ids, false), "he<|end|>ll");
    EXPECT_EQ(tok->vocab_size(), 262);
}

TEST(HfTokenizerFile, ByteLevelTakesAnyBytes) {
    const auto tok = load(byte_level_tokenizer());
    const std::string bytes = "he\xFF\xFEll";
    const std::vector<TokenId> ids = tok->encode(bytes, false);
    EXPECT_EQ(ids, (std::vector<TokenId>{256, 0xFF, 0xFE, 257}));
    std::string raw;
    for (const TokenId id : ids) raw += tok->token_bytes(id);
    EXPECT_EQ(raw, bytes);
    EXPECT_EQ(tok->decode(ids, false), "he\xEF\xBF\xBD\xEF\xBF\xBDll");  // lossy, as the reference decodes
}

TEST(HfTokenizerFile, SentencePieceStyleWithByteFallbackAndTemplate) {
    const auto tok = load(spm_tokenizer());
    // "hi a" -> "▁hi▁a": ▁h+i merged to ▁hi, ▁ then a.
    EXPECT_EQ(tok->encode("hi a", false), (std::vector<TokenId>{263, 259, 264}));
    EXPECT_EQ(tok->encode("hi", true), (std::vector<TokenId>{1, 263}));
    // "é" is not in the vocab: its two bytes by fallback; decode puts the character back.
    const std::vector<TokenId> e = tok->encode("\xC3\xA9", false);
    EXPECT_EQ(e, (std::vector<TokenId>{259, 3 + 0xC3, 3 + 0xA9}));
    EXPECT_EQ(tok->decode(e, false), "\xC3\xA9");
    EXPECT_EQ(tok->token_bytes(3 + 0xC3), "\xC3");
    EXPECT_EQ(tok->token_bytes(259), " ");
    // A lone continuation byte decodes to one U+FFFD per byte (ByteFallback).
    const std::vector<TokenId> lone = {3 + 0xA9, 3 + 0xA9};
    EXPECT_EQ(tok->decode(lone, false), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(HfTokenizerFile, InvalidUtf8IsAnErrorNamingTheOffsetWhenNotByteLevel) {
    const auto tok = load(spm_tokenizer());
    try {
        tok->encode("hi \xC3(", false);
        FAIL() << "no error";
    } catch (const moe::Error& e) {
        EXPECT_NE(std::string(e.what()).find("byte offset 3"), std::string::npos) << e.what();
    }
}

TEST(HfTokenizerFile, DecodeRejectsIdsWithoutAToken) {
    const auto tok = load(byte_level_tokenizer());
    const std::vector<TokenId> bad = {256, 999};
    try {
        tok->decode(bad, false);
        FAIL() << "no error";
    } catch (const moe::Error& e) {
        EXPECT_NE(std::string(e.what()).find("999"), std::string::npos) << e.what();
    }
    EXPECT_THROW(tok->token_bytes(-3), moe::Error);
}

TEST(HfTokenizerFile, MalformedFilesNameFileFieldAndProblem) {
    const json good = byte_level_tokenizer();
    auto err = [&](auto&& edit) {
        json j = good;
        edit(j);
        return load_error(j.dump());
    };
    EXPECT_NE(load_error(good.dump().substr(0, 500)).find("is not valid JSON"), std::string::npos);
    EXPECT_NE(load_error("").find("is not valid JSON"), std::string::npos);
    EXPECT_NE(load_error("[1, 2]").find("not an object"), std::string::npos);
    std::string e = err([](json& j) { j["model"]["merges"].push_back("h zzz"); });
    EXPECT_NE(e.find("model.merges[5]"), std::string::npos) << e;
    EXPECT_NE(e.find("'zzz', which is not in model.vocab"), std::string::npos) << e;
    e = err([](json& j) { j["model"]["merges"][0] = "hello"; });
    EXPECT_NE(e.find("model.merges[0]"), std::string::npos) << e;
    e = err([](json& j) { j["model"]["vocab"]["x"] = "seven"; });
    EXPECT_NE(e.find("not a token id"), std::string::npos) << e;
    e = err([](json& j) { j["model"].erase("vocab"); });
    EXPECT_NE(e.find("model.vocab: is missing"), std::string::npos) << e;
    e = err([](json& j) { j["model"]["type"] = "Unigram"; });
    EXPECT_NE(e.find("model.type: unsupported model type 'Unigram'"), std::string::npos) << e;
    e = err([](json& j) { j["normalizer"] = {{"type", "BertNormalizer"}}; });
    EXPECT_NE(e.find("normalizer.type: unsupported normalizer type 'BertNormalizer'"), std::string::npos) << e;
    e = err([](json& j) {
        j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Digits"}}, {{"type", "Punctuation"}}})}};
    });
    EXPECT_NE(e.find("pre_tokenizer.pretokenizers[1].type: unsupported pre-tokenizer type 'Punctuation'"), std::string::npos) << e;
    e = err([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; });
    EXPECT_NE(e.find("decoder.type: unsupported decoder type 'WordPiece'"), std::string::npos) << e;
    e = err([](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; });
    EXPECT_NE(e.find("post_processor.type: unsupported post-processor type 'RobertaProcessing'"), std::string::npos) << e;
    e = err([](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}; });
    EXPECT_NE(e.find("pre_tokenizer.pattern.Regex: regex does not compile"), std::string::npos) << e;
    e = err([](json& j) { j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "Sideways"}}; });
    EXPECT_NE(e.find("unsupported split behavior 'Sideways'"), std::string::npos) << e;
    e = err([](json& j) { j["added_tokens"][0]["id"] = 5; });
    EXPECT_NE(e.find("added_tokens[0].id"), std::string::npos) << e;
    e = err([](json& j) { j["model"]["dropout"] = 0.1; });
    EXPECT_NE(e.find("model.dropout"), std::string::npos) << e;
    e = err([](json& j) { j["truncation"] = {{"max_length", 8}}; });
    EXPECT_NE(e.find("truncation"), std::string::npos) << e;
    e = err([](json& j) { j["model"]["unk_token"] = "<nope>"; });
    EXPECT_NE(e.find("model.unk_token: '<nope>' is not in model.vocab"), std::string::npos) << e;
    EXPECT_NE(load_error(good.dump()), "x");  // the unedited file loads
    EXPECT_EQ(load_error(good.dump()), "");
}

TEST(HfTokenizerFile, MissingFileAndFolderConfig) {
    try {
        moe::load_hf_tokenizer("/nonexistent/moelab/tokenizer.json");
        FAIL() << "no error";
    } catch (const moe::Error& e) {
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos);
    }
    TempDir t;
    t.write("tokenizer.json", byte_level_tokenizer().dump());
    t.write("tokenizer_config.json", json({{"bos_token", "<|end|>"}, {"eos_token", {{"content", "<|end|>"}}}, {"add_bos_token", true}}).dump());
    const auto tok = moe::load_hf_tokenizer(t.dir);
    EXPECT_EQ(tok->bos_id(), 261);
    EXPECT_EQ(tok->eos_id(), 261);
    EXPECT_EQ(tok->encode("he", true), (std::vector<TokenId>{261, 256}));  // add_bos_token, post-processor adds none
    EXPECT_EQ(tok->encode("he", false), (std::vector<TokenId>{256}));
    t.write("tokenizer_config.json", json({{"bos_token", "<nope>"}}).dump());
    EXPECT_THROW(moe::load_hf_tokenizer(t.dir), moe::Error);
}

TEST(Regex, OnigurumaWhitespaceAndWordClasses) {
    // \s is White_Space: U+0085 and U+00A0 yes, U+180E (PCRE2's own \s takes it) and U+200B no.
    const moe::text::Regex ws("\\s+", "test", "pattern");
    auto matched = [&](const std::string& s) {
        const auto m = ws.find_matches(s);
        return m.size() == 1 && m[0].is_match;
    };
    EXPECT_TRUE(matched("\xC2\x85"));
    EXPECT_TRUE(matched("\xC2\xA0"));
    EXPECT_TRUE(matched("\xE3\x80\x80"));
    EXPECT_FALSE(matched("\xE1\xA0\x8E"));
    EXPECT_FALSE(matched("\xE2\x80\x8B"));
    // Case-insensitive group and look-ahead, as in the Qwen/GPT-4 patterns.
    const moe::text::Regex re("(?i:'s|'t)|\\s+(?!\\S)|\\s+|\\p{L}+", "test", "pattern");
    std::vector<std::string> parts;
    const std::string text = "it'S  ok";
    for (const auto& s : re.find_matches(text)) parts.push_back(text.substr(s.start, s.end - s.start));
    EXPECT_EQ(parts, (std::vector<std::string>{"it", "'S", " ", " ", "ok"}));
}
