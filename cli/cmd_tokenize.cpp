// moelab-cli tokenize: text -> ids and display pieces with the byte tokenizer or a Hugging Face
// tokenizer.json (core/text/). --jsonl runs many texts through one loaded tokenizer, for
// batch checks from scripts.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/io/file_io.h"
#include "core/text/hf_tokenizer.h"
#include "core/text/tokenizer.h"

namespace moe::cli {

namespace {

void print_usage() {
    std::printf(
        "usage: moelab-cli tokenize [--tokenizer PATH|byte] (--text T | --file F | --jsonl F) [--special] [--json]\n"
        "Splits a text into the tokens a model sees, with the model's own tokenizer.\n"
        "  --tokenizer P  a tokenizer.json, a model folder holding one (tokenizer_config.json there\n"
        "                 adds BOS/EOS), or byte (the built-in model's: one token per byte; default)\n"
        "  --text T       the text\n"
        "  --file F       the text is the file's bytes (invalid UTF-8 is an error naming its byte\n"
        "                 offset, unless the tokenizer is byte-level)\n"
        "  --jsonl F      one JSON string per line; prints one JSON result per line\n"
        "  --special      add the special tokens the model adds (BOS, templates)\n"
        "  --json         print {\"ids\": [...], \"pieces\": [...], \"decoded\": \"...\"}\n");
}

std::string to_json_line(const Tokenizer& tok, const std::string& text, bool special) {
    const std::vector<TokenId> ids = tok.encode(text, special);
    nlohmann::json j;
    j["ids"] = ids;
    j["pieces"] = tok.display_pieces(ids);
    j["decoded"] = tok.decode(ids, false);
    // Byte tokenizers decode any bytes: show invalid UTF-8 as U+FFFD rather than failing.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_table(const Tokenizer& tok, const std::string& text, bool special) {
    const std::vector<TokenId> ids = tok.encode(text, special);
    const std::vector<std::string> pieces = tok.display_pieces(ids);
    std::printf("%s: %zu bytes -> %zu tokens\n", tok.name().c_str(), text.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
        std::printf("%6zu %8d  %s%s\n", i, ids[i], pieces[i].c_str(), tok.is_special(ids[i]) ? "   (special)" : "");
}

}  // namespace

int cmd_tokenize(Args args) {
    ArgParser ap("tokenize", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        print_usage();
        return 0;
    }
    const std::string path = ap.value("--tokenizer", "byte");
    const bool has_text = std::find(ap.rest.begin(), ap.rest.end(), "--text") != ap.rest.end();
    const std::string text_arg = ap.value("--text", "");
    const std::string file = ap.value("--file", "");
    const std::string jsonl = ap.value("--jsonl", "");
    const bool special = ap.flag("--special");
    const bool as_json = ap.flag("--json");
    ap.finish();
    const int sources = int(has_text) + int(!file.empty()) + int(!jsonl.empty());
    if (sources != 1)
        throw Error("moelab-cli tokenize", "--text/--file/--jsonl", sources == 0 ? "no text given" : "more than one text source given",
                    "give exactly one of --text T, --file F, --jsonl F");

    const std::unique_ptr<Tokenizer> tok = path == "byte" ? make_byte_tokenizer() : load_hf_tokenizer(path);
    if (!jsonl.empty()) {
        std::ifstream in(jsonl, std::ios::binary);
        if (!in) throw Error(jsonl, "", "cannot be opened", "--jsonl takes a file of one JSON string per line");
        std::string line;
        for (int64_t n = 1; std::getline(in, line); ++n) {
            if (line.empty() || line == "\r") continue;
            nlohmann::json v;
            try {
                v = nlohmann::json::parse(line);
            } catch (const nlohmann::json::exception& e) {
                throw Error(jsonl, "line " + num(n), std::string("is not JSON: ") + e.what(), "one JSON string per line");
            }
            if (!v.is_string()) throw Error(jsonl, "line " + num(n), "is " + std::string(v.type_name()) + ", not a JSON string");
            std::printf("%s\n", to_json_line(*tok, v.get<std::string>(), special).c_str());
        }
        return 0;
    }
    const std::string text = file.empty() ? text_arg : read_file(file);
    if (as_json) std::printf("%s\n", to_json_line(*tok, text, special).c_str());
    else print_table(*tok, text, special);
    return 0;
}

}  // namespace moe::cli
