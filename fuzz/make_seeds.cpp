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

// A real tokenizer.json cut to its first n_keep vocabulary entries (plus added tokens) and the
// merges among them: every stage (normalizer, pre-tokenizer, decoder, post-processor) stays as
// the model ships it, in a few KB instead of MBs.
std::string shrink_tokenizer(const std::string& text, size_t n_keep) {
    nlohmann::json j = nlohmann::json::parse(text);
    nlohmann::json& model = j["model"];
    if (!model.contains("vocab") || !model["vocab"].is_object()) return {};
    std::vector<std::pair<int64_t, std::string>> by_id;
    for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) by_id.push_back({it.value().get<int64_t>(), it.key()});
    std::sort(by_id.begin(), by_id.end());
    nlohmann::json vocab = nlohmann::json::object();
    std::set<std::string> kept;
    for (size_t i = 0; i < by_id.size() && i < n_keep; ++i) {
        vocab[by_id[i].second] = static_cast<int64_t>(i);
        kept.insert(by_id[i].second);
    }
    nlohmann::json merges = nlohmann::json::array();
    if (model.contains("merges"))
        for (const nlohmann::json& m : model["merges"]) {
            std::string a, b;
            if (m.is_string()) {
                const std::string s = m.get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos) continue;
                a = s.substr(0, sp), b = s.substr(sp + 1);
            } else if (m.is_array() && m.size() == 2) {
                a = m[0].get<std::string>(), b = m[1].get<std::string>();
            } else {
                continue;
            }
            if (kept.count(a) && kept.count(b) && kept.count(a + b)) merges.push_back(m);
        }
    model["vocab"] = vocab;
    model["merges"] = merges;
    nlohmann::json added = nlohmann::json::array();
    int64_t next = static_cast<int64_t>(vocab.size());
    if (j.contains("added_tokens"))
        for (nlohmann::json t : j["added_tokens"]) {
            if (added.size() >= 8) break;
            t["id"] = next++;
            added.push_back(t);
        }
    j["added_tokens"] = added;
    // Post-processors name special tokens by id: point them at the renumbered ones, or drop them.
    if (j.contains("post_processor") && !j["post_processor"].is_null()) j["post_processor"] = nullptr;
    return j.dump();
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
        const std::string small = shrink_tokenizer(read(p), 400);
        if (!small.empty())
            write(out / "tokenizer" / name, small + std::string(moe::fuzz::kSeparator) + "Hello, world! Grüße 123 \n\t  <s>x</s>");
    }
    std::printf("fuzz_seeds: wrote seeds under %s\n", out.string().c_str());
    fs::remove_all(moe::fuzz::scratch_dir());
    return 0;
}
