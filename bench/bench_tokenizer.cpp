// Tokenizer speed against the reference, in the same run: is moelab at least as fast as Hugging
// Face's Rust `tokenizers` library (its Node binding, prebuilt native binary) on each of the four
// real tokenizer.json files?
//
// Tokenizer/encode/<name>   encode one 1 MB mixed-language text (no special tokens), one thread.
//                           Counters: MB_s (ours), ref_MB_s (the library on the same text file,
//                           best of 3 encodes, RAYON_NUM_THREADS=1), vs_ref = MB_s / ref_MB_s
//                           (>= 1.0 is the target), same_ids (1 if both gave the very same ids).
// Tokenizer/load/<name>     load tokenizer.json from disk (gptoss: the 28 MB o200k file; target
//                           < 1.5 s). Counter ref_load_s: the library's Tokenizer.fromFile.
//
// The text: the fortunes (English, German, Spanish, Russian) and C headers that the built-in
// model's corpus is made of, interleaved with the tokenizer test corpus (CJK, Indic, emoji,
// combining marks, whitespace runs, numbers), cut to 1 MB at a character boundary.
// Fixtures come from scripts/fetch-fixtures.sh; without them the benchmarks say so and skip.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/models/corpus.h"
#include "core/text/hf_tokenizer.h"

namespace {

namespace fs = std::filesystem;
const fs::path kFixtures = MOE_FIXTURES_DIR;
constexpr size_t kTextBytes = 1 << 20;
const char* const kNames[] = {"qwen3", "deepseek_v3", "llama2", "gptoss"};

const std::string& mixed_text() {
    static const std::string text = [] {
        moe::CorpusOptions o;
        o.max_english = 300000;
        o.max_german = 180000;
        o.max_spanish = 150000;
        o.max_russian = 200000;
        o.max_c = 150000;
        o.max_numbers = 30000;
        const moe::Corpus c = moe::build_corpus(o);
        std::vector<std::string> extra;
        std::ifstream f(fs::path(MOE_SOURCE_DIR) / "tests/data/tokenizer_corpus.jsonl");
        for (std::string line; std::getline(f, line);)
            if (!line.empty()) extra.push_back(nlohmann::json::parse(line).get<std::string>());
        std::string out;
        size_t at = 0, k = 0;
        // Every ~2 KB of corpus, one string of the tokenizer corpus.
        while (out.size() < kTextBytes + 8 && at < c.train.size()) {
            size_t n = std::min<size_t>(2048, c.train.size() - at);
            while (at + n < c.train.size() && (static_cast<unsigned char>(c.train[at + n]) & 0xC0) == 0x80) ++n;  // whole characters
            out.append(c.train, at, n);
            at += n;
            out += '\n';
            out += extra[k++ % extra.size()];
            out += '\n';
        }
        size_t cut = std::min(kTextBytes, out.size());
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
        out.resize(cut);
        return out;
    }();
    return text;
}

fs::path text_file() {
    static const fs::path p = [] {
        const fs::path f = fs::temp_directory_path() / "moelab_bench_tokenizer_text.txt";
        std::ofstream(f, std::ios::binary) << mixed_text();
        return f;
    }();
    return p;
}

struct Reference {
    double load_s = 0, encode_s = 0;
    size_t tokens = 0;
    std::string ids_hash;
    bool ok = false;
    std::string why;
};

// Runs the library on the same text file, best of 3 encodes.
Reference reference(const std::string& name) {
    Reference r;
    const fs::path node_modules = kFixtures / "npm" / "node_modules";
    const std::string cmd = "RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false NODE_PATH='" + node_modules.string() + "' node '" +
                            (fs::path(MOE_SOURCE_DIR) / "scripts/tokenizer_reference.js").string() + "' bench '" +
                            (kFixtures / "tokenizers" / name / "tokenizer.json").string() + "' '" + text_file().string() + "' 3 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) { r.why = "cannot run node"; return r; }
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    if (pclose(p) != 0) { r.why = "reference failed: " + out; return r; }
    try {
        const nlohmann::json j = nlohmann::json::parse(out);
        r.load_s = j["load_s"].get<double>();
        r.encode_s = 1e30;
        for (const auto& t : j["encode_s"]) r.encode_s = std::min(r.encode_s, t.get<double>());
        r.tokens = j["tokens"].get<size_t>();
        r.ids_hash = j["ids_hash"].get<std::string>();
        r.ok = true;
    } catch (const std::exception& e) {
        r.why = std::string("reference output unreadable: ") + e.what() + ": " + out;
    }
    return r;
}

bool have_fixtures(benchmark::State& state, const std::string& name) {
    if (fs::exists(kFixtures / "tokenizers" / name / "tokenizer.json")) return true;
    state.SkipWithError(("no fixtures at " + kFixtures.string() + ": run bash scripts/fetch-fixtures.sh").c_str());
    return false;
}

std::string fnv1a(const std::vector<moe::TokenId>& ids) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const moe::TokenId id : ids)
        for (int k = 0; k < 4; ++k) {
            h ^= (static_cast<uint32_t>(id) >> (8 * k)) & 0xFF;
            h *= 0x100000001b3ULL;
        }
    char b[24];
    std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(h));
    return b;
}

void bench_encode(benchmark::State& state, const std::string& name) {
    if (!have_fixtures(state, name)) return;
    const auto tok = moe::load_hf_tokenizer(kFixtures / "tokenizers" / name / "tokenizer.json");
    const std::string& text = mixed_text();
    const Reference ref = reference(name);
    const std::vector<moe::TokenId> first = tok->encode(text, false);  // warms the word cache, as the reference's first encode does
    size_t n_tokens = first.size();
    double best = 1e30;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::vector<moe::TokenId> ids = tok->encode(text, false);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        n_tokens = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    const double mb = static_cast<double>(text.size()) / 1e6;
    state.counters["MB_s"] = mb / best;
    state.counters["tokens"] = static_cast<double>(n_tokens);
    if (ref.ok) {
        state.counters["ref_MB_s"] = mb / ref.encode_s;
        state.counters["vs_ref"] = ref.encode_s / best;
        state.counters["same_ids"] = ref.tokens == n_tokens && ref.ids_hash == fnv1a(first) ? 1 : 0;
    } else {
        state.SetLabel(ref.why.substr(0, 200));
    }
}

void bench_load(benchmark::State& state, const std::string& name) {
    if (!have_fixtures(state, name)) return;
    const fs::path p = kFixtures / "tokenizers" / name / "tokenizer.json";
    double best = 1e30;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        auto tok = moe::load_hf_tokenizer(p);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        benchmark::DoNotOptimize(tok.get());
    }
    state.counters["load_s"] = best;
    const Reference ref = reference(name);
    if (ref.ok) state.counters["ref_load_s"] = ref.load_s;
}

const bool registered = [] {
    for (const char* n : kNames) {
        const std::string name = n;
        benchmark::RegisterBenchmark(("Tokenizer/encode/" + name).c_str(), [name](benchmark::State& s) { bench_encode(s, name); })
            ->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
    }
    for (const char* n : kNames) {
        const std::string name = n;
        benchmark::RegisterBenchmark(("Tokenizer/load/" + name).c_str(), [name](benchmark::State& s) { bench_load(s, name); })
            ->Unit(benchmark::kMillisecond)->Iterations(2)->UseRealTime();
    }
    return true;
}();

}  // namespace
