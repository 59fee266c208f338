// fuzz_seeds OUT_DIR: writes the generated part of the seed corpora, one folder per harness.
// The rest of the seeds are real files passed to libFuzzer as extra corpus folders (scenarios/,
// assets/configs/) and the committed regression inputs in fuzz/regressions/.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/io/safetensors.h"
#include "core/models/hf/hf_tiny.h"
#include "core/models/lm.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/shrink_tokenizer.h"

namespace fs = std::filesystem;

namespace {
void write(const fs::path& p, const std::string& bytes) {
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << bytes;
}

std::string read(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
        return 1;
    }
    const fs::path out = argv[1];
    // Hugging Face folders: every architecture's tiny checkpoint, packed as fuzz_hf_folder reads
    // them (config.json first, then SEP name\n bytes per file); the first of each also sharded.
    for (const std::string& type : moe::hf::tiny_model_types())
        for (const int shards : {1, 2}) {
            const fs::path dir = moe::fuzz::scratch_dir() / "seed-hf";
            fs::remove_all(dir);
            moe::hf::TinySpec spec;
            spec.model_type = type;
            spec.n_shards = shards;
            spec.dtype = shards == 1 ? "F32" : "BF16";
            spec.k = 2;
            moe::hf::write_tiny_checkpoint(dir.string(), spec);
            std::vector<fs::path> files;
            for (const fs::directory_entry& e : fs::directory_iterator(dir))
                if (e.path().filename() != "config.json") files.push_back(e.path());
            std::sort(files.begin(), files.end());
            std::string packed = read(dir / "config.json");
            for (const fs::path& f : files)
                packed += std::string(moe::fuzz::kSeparator) + f.filename().string() + "\n" + read(f);
            write(out / "hf_folder" / (type + "-" + std::to_string(shards)), packed);
        }
    // Model pairs: real moelab-lm files from LmModel::save, a few KB each.
    int i = 0;
    for (const auto& [every, n] : {std::pair{1, 4}, std::pair{2, 2}}) {
        const fs::path tmp = moe::fuzz::scratch_dir() / "seed.safetensors";
        moe::LmModel::init(moe::fuzz::small_lm(8, n, every), 1).save(tmp.string());
        const std::string config = read(fs::path(tmp).replace_extension(".json")), weights = read(tmp);
        write(out / "lm_model" / ("pair" + std::to_string(i)), config + std::string(moe::fuzz::kSeparator) + weights);
        write(out / "safetensors" / ("lm" + std::to_string(i) + ".safetensors"), weights);
        ++i;
    }
    // safetensors with every writable dtype, metadata, a scalar and an empty tensor.
    moe::SafeTensorsFile f;
    f.metadata["format"] = "pt";
    for (const char* dt : {"F32", "F16", "BF16"}) {
        moe::SafeTensor t;
        t.dtype = dt;
        t.shape = {2, 3};
        t.data = {0.5f, -1.0f, 65504.0f, 1e-8f, 3.0f, -0.0f};
        f.tensors.emplace(std::string("w_") + dt, t);
    }
    moe::SafeTensor scalar;
    scalar.dtype = "F32";
    scalar.data = {1.0f};
    f.tensors.emplace("scalar", scalar);
    moe::SafeTensor empty;
    empty.dtype = "F16";
    empty.shape = {0, 4};
    f.tensors.emplace("empty", empty);
    write(out / "safetensors" / "dtypes.safetensors", moe::serialize_safetensors(f));
    // Router inputs are raw bytes for FuzzedDataProvider: a few lengths of a counting pattern.
    for (size_t n : {16u, 64u, 512u, 4096u}) {
        std::string b(n, '\0');
        for (size_t j = 0; j < n; ++j) b[j] = static_cast<char>(j * 37 + 11);
        write(out / "router" / ("bytes" + std::to_string(n)), b);
    }
    // Text for the forward harness: prose, code, UTF-8 beyond ASCII.
    const char* texts[] = {"Mixture of experts routes each token to a few experts.", "int main(void) { return 0; }\n",
                           "Grüße, 世界! Ça va? \xF0\x9F\x98\x80", "\x01\x02\xff\xfe bytes\x7f"};
    for (size_t j = 0; j < std::size(texts); ++j) write(out / "forward" / ("text" + std::to_string(j)), std::string("\x03\x02\x01\x00", 4) + texts[j]);
    // tokenizer.json: the real files of the tokenizer tests (scripts/fetch-fixtures.sh), shrunk.
    const char* fx = std::getenv("MOE_FIXTURES_DIR");
    const char* home = std::getenv("HOME");
    const fs::path fixtures = fx ? fs::path(fx) : fs::path(home ? home : "/root") / ".cache/moelab/fixtures";
    std::error_code ec;
    for (const char* name : {"llama2", "qwen3", "deepseek_v3", "gptoss"}) {
        const fs::path p = fixtures / "tokenizers" / name / "tokenizer.json";
        if (!fs::exists(p, ec)) continue;
        const std::string real = read(p);
        const std::string small = moe::fuzz::shrink_tokenizer(real, 400);
        if (!small.empty())
            write(out / "tokenizer" / name, small + std::string(moe::fuzz::kSeparator) + "Hello, world! Grüße 123 \n\t  <s>x</s>");
        // The tokenizers fuzz_tokenizer's text inputs run on (loaded once per process; whole, the
        // larger ones take 3-12 s to load in the instrumented build, more than a CI slot can give).
        const std::string text_tok = moe::fuzz::shrink_tokenizer(real, moe::fuzz::kTextTokenizerVocab);
        if (!text_tok.empty()) write(out / "real-tokenizers" / (std::string(name) + ".json"), text_tok);
    }
    // Texts for the real tokenizers (fuzz_tokenizer's second kind: byte 0..3 picks the tokenizer).
    const char* tok_texts[] = {"Hello, world! Gr\303\274\303\237e 123 \n\t  <s>x</s>", "int main(void) { return 0; }\n",
                               "\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x91\x8b\xf0\x9f\x8f\xbd  a\r\n\r\n  b", "<|endoftext|><|im_start|>user\n\xff\xfe"};
    for (int t = 0; t < 4; ++t)
        for (size_t j = 0; j < std::size(tok_texts); ++j)
            write(out / "tokenizer" / ("text" + std::to_string(t) + "-" + std::to_string(j)), std::string(1, static_cast<char>(t)) + tok_texts[j]);
    // moelab-cli argument vectors (fuzz_cli: arguments separated by NUL bytes): the README's
    // command lines and the tests', with paths under the harness's fx/ and sizes in its bounds.
    const std::vector<std::vector<std::string>> cli_lines = {
        {"demo"},
        {"demo", "--text", "Hello, MoE", "--k", "1"},
        {"params", "fx/hf/config.json"},
        {"params", "fx/hf", "--json", "--dtype", "fp8", "--context", "32768"},
        {"route", "--n-experts", "8", "--k", "2", "--scheme", "switch", "--capacity", "1.0", "--drop", "position", "--tokens", "32", "--out", "t"},
        {"route", "--n-experts", "4", "--k", "2", "--tokens", "20", "--capacity", "1.0", "--drop", "position", "--seed", "5", "--out", "b"},
        {"route", "--input", "fx/hidden.safetensors", "--n-experts", "4", "--activation", "gelu", "--shared", "1"},
        {"route", "--k", "0"},
        {"route", "--model", "builtin", "--text", "Hello, MoE", "--out", "hello"},
        {"route", "--model", "fx/hf", "--token-ids", "5,17,30,2,9", "--k", "1", "--out", "t", "--logits", "l.npy"},
        {"route", "--model", "fx/lm.safetensors", "--text", "ab", "--scheme", "expert_choice", "--device", "cuda"},
        {"generate", "--prompt", "The cat ", "--n", "8"},
        {"generate", "--model", "fx/hf", "--prompt", "Hi", "--n", "3", "--temperature", "0"},
        {"mix2d", "--balance", "none"},
        {"mix2d", "--balance", "switch", "--steps", "4", "--every", "2", "--map", "8x4", "--zloss", "0.01"},
        {"mix2d", "--balance", "bias", "--experts", "4", "--jitter", "0.1"},
        {"lesson", "03_switch_capacity"},
        {"lesson", "08_expert_collapse", "--model", "fx/lm.safetensors", "--max-train-steps", "2"},
        {"lesson", "--list"},
        {"export", "load", "--text", "The cat sat", "--k", "1", "--scheme", "switch", "--out", "load.svg"},
        {"export", "heatmap", "--text", "The cat sat", "--out", "h.png", "--capacity-factor", "0.5", "--drop-policy", "score"},
        {"train", "--corpus", "fx/corpus", "--out", "my-model", "--steps", "2"},
        {"train", "--corpus", "fx/corpus", "--out", "m", "--balance", "bias", "--ckpt-every", "1", "--log-every", "1"},
        {"tokenize", "--text", "Hello, w\xc3\xb6rld! \xf0\x9f\x91\x8b"},
        {"tokenize", "--tokenizer", "fx/hf", "--text", "MoE", "--special", "--json"},
        {"tokenize", "--tokenizer", "fx/hf/tokenizer.json", "--file", "fx/text.txt"},
        {"tokenize", "--tokenizer", "fx/hf", "--jsonl", "fx/lines.jsonl"},
        {"hf-tiny", "--type", "qwen3_moe", "--experts", "16", "--k", "8", "--layers", "4", "--out", "q"},
        {"hf-tiny", "--type", "deepseek_v3", "--dtype", "BF16", "--shards", "2", "--yarn", "--out", "d"},
        {"help"},
        {"train", "--help"},
    };
    for (size_t j = 0; j < cli_lines.size(); ++j) {
        std::string b;
        for (size_t a = 0; a < cli_lines[j].size(); ++a) b += (a ? std::string(1, '\0') : std::string()) + cli_lines[j][a];
        write(out / "cli" / ("line" + std::to_string(j)), b);
    }
    std::printf("fuzz_seeds: wrote seeds under %s\n", out.string().c_str());
    fs::remove_all(moe::fuzz::scratch_dir());
    return 0;
}
