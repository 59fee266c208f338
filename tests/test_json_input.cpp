// core/io/json_input.h: outside JSON is depth-capped before parsing and every failure is a
// moe::Error (issue 15, holes 1 and 2), for every reader that uses it, tokenizer.json included.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/io/json_input.h"
#include "core/io/limits.h"
#include "core/models/hf/hf_config.h"
#include "core/models/hf/hf_tiny.h"
#include "core/models/lm.h"
#include "core/teach/params.h"
#include "core/text/hf_tokenizer.h"

namespace moe {
namespace {

std::string error_of(const std::string& text) {
    try {
        parse_json_input(text, "f.json", "header", "hint");
    } catch (const Error& e) {
        EXPECT_EQ(e.where(), "f.json");
        EXPECT_EQ(e.field(), "header");
        return e.problem();
    }
    return "";
}

TEST(JsonInput, DepthIsCappedOutsideStringsOnly) {
    const std::string at_cap = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
    EXPECT_EQ(error_of(at_cap), "");
    const std::string over = "[" + at_cap + "]";
    EXPECT_NE(error_of(over).find("more than 64 deep"), std::string::npos) << error_of(over);
    EXPECT_EQ(error_of("{\"a\": \"" + std::string(1000, '{') + "\\\"[[[\"}"), "");  // brackets in strings, escaped quote
    EXPECT_NE(error_of(std::string(10000, '{')).find("more than 64 deep"), std::string::npos);
}

TEST(JsonInput, EveryLibraryExceptionIsAMoeError) {
    EXPECT_NE(error_of("{\"a\": 1e999}").find("not valid JSON"), std::string::npos);  // out_of_range 406
    EXPECT_NE(error_of("{\"a\": ").find("not valid JSON"), std::string::npos);        // parse_error
    EXPECT_NE(error_of("\"\xff\"").find("not valid JSON"), std::string::npos);         // invalid UTF-8
}

TEST(JsonInput, IntegersAreExactAndInRange) {
    const auto read = [](const char* text) { return json_integer(nlohmann::json::parse(text), "f.json", "n", -5, 1 << 20, "hint"); };
    EXPECT_EQ(read("7"), 7);
    EXPECT_EQ(read("-5"), -5);
    EXPECT_EQ(read("1048576"), 1 << 20);
    for (const char* bad : {"1048577", "-6", "1.9", "1e30", "4294967298", "18446744073709551615", "\"3\"", "true", "null", "[1]"}) {
        try {
            read(bad);
            ADD_FAILURE() << bad << " accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.field(), "n");
            EXPECT_NE(std::string(e.what()).find("-5..1048576"), std::string::npos) << e.what();
        }
    }
}

TEST(JsonInput, IntegerErrorsSayWhatTheValueIs) {
    const auto problem = [](const char* text) {
        try {
            json_integer(nlohmann::json::parse(text), "f.json", "n", 0, 9, "");
        } catch (const Error& e) {
            return e.problem();
        }
        return std::string("accepted");
    };
    EXPECT_EQ(problem("1.9"), "is a number with a fraction (1.9)");
    EXPECT_EQ(problem("\"3\""), "is a string (\"3\")");
    EXPECT_EQ(problem("true"), "is a boolean (true)");
    EXPECT_EQ(problem("[1]"), "is an array of 1");
    EXPECT_EQ(problem("10"), "is 10");
    EXPECT_EQ(problem("null"), "is null");
}

// One integer reader: the byte LM's .json, the parameter counter's and the HF loader's
// config.json name the field and say the same thing about the same bad value.
TEST(JsonInput, EveryConfigReaderSharesTheIntegerReader) {
    const std::string expected = "is a number with a fraction (1.9) (expected an integer in 1..";
    const auto error_text = [](auto&& parse) {
        try {
            parse();
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    const std::string lm = error_text([] { lm_config_from_json(R"({"format": "moelab-lm", "n_layers": 1.9})", "m.json"); });
    EXPECT_NE(lm.find("m.json: n_layers: is a number with a fraction (1.9) (expected an integer in -2147483648..2147483647"),
              std::string::npos) << lm;
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("moelab_json_int_" + std::to_string(::getpid()));
    hf::TinySpec spec;
    hf::write_tiny_checkpoint(dir.string(), spec);
    nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir / "config.json"));
    std::filesystem::remove_all(dir);
    cfg["num_hidden_layers"] = 1.9;
    const std::string text = cfg.dump();
    for (const std::string& e : {error_text([&] { parse_model_config(text, "config.json"); }),
                                 error_text([&] { hf::parse_hf_config(text, "config.json"); })})
        EXPECT_NE(e.find("config.json: num_hidden_layers: " + expected), std::string::npos) << e;
}

TEST(JsonInput, ShownNeverDumpsContainers) {
    EXPECT_EQ(json_shown(nlohmann::json::parse("[[1],[2],[3]]")), "an array of 3");
    EXPECT_EQ(json_shown(nlohmann::json::parse("{\"a\":{}}")), "an object");
    EXPECT_EQ(json_shown(nlohmann::json::parse("1.5")), "1.5");
    EXPECT_EQ(json_shown(std::string(100, 'x')).size(), 40u);
}

TEST(JsonInput, TokenizerJsonGoesThroughIt) {
    const std::filesystem::path p = std::filesystem::temp_directory_path() / ("moelab_json_input_" + std::to_string(::getpid()) + ".json");
    for (const std::string& text : {std::string(R"({"model":{"type":"BPE","vocab":{"a":1e999},"merges":[]}})"),
                                    R"({"normalizer":)" + std::string(10000, '[') + std::string(10000, ']') + "}"}) {
        std::ofstream(p, std::ios::binary) << text;
        try {
            load_hf_tokenizer(p);
            ADD_FAILURE() << "loaded a hostile tokenizer.json";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
        }
    }
    std::filesystem::remove(p);
}

TEST(JsonInput, DuplicateKeysPerObject) {
    EXPECT_EQ(first_duplicate_key(R"({"a": 1, "b": 2})"), "");
    EXPECT_EQ(first_duplicate_key(R"({"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]})"), "")
        << "the same key in different objects is fine";
    EXPECT_EQ(first_duplicate_key(R"({"a": 1, "b": 2, "a": 3})"), "a");
    EXPECT_EQ(first_duplicate_key(R"({"w": {"dtype": "F32", "shape": [1], "dtype": "F16"}})"), "dtype");
    EXPECT_EQ(first_duplicate_key(R"([{"x": 1}, {"y": 1, "y": 2}])"), "y");
    EXPECT_EQ(first_duplicate_key(R"({"a": 1, "a")"), "a") << "found before the text turns out truncated";
    EXPECT_EQ(first_duplicate_key(R"({"a": 1e999, "b": 1})"), "") << "a number out of range is the parser's to report";
    EXPECT_EQ(first_duplicate_key("not json"), "");
    // Many children in one object (a real checkpoint's header: tens of thousands of tensors).
    std::string big = "{";
    for (int i = 0; i < 50000; ++i) big += "\"t" + std::to_string(i) + "\": {\"shape\": [1]},";
    big += "\"t17\": {}}";
    EXPECT_EQ(first_duplicate_key(big), "t17");
    EXPECT_EQ(parse_json_input(big, "big.json", "", "").size(), 50000u);
}

}  // namespace
}  // namespace moe
