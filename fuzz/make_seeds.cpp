// fuzz_seeds OUT_DIR: writes the generated part of the seed corpora, one folder per harness.
// The rest of the seeds are real files passed to libFuzzer as extra corpus folders (scenarios/,
// assets/configs/) and the committed regression inputs in fuzz/regressions/.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/io/safetensors.h"
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

moe::LmConfig small_lm(int moe_every, int n_experts) {
    moe::LmConfig c;
    c.d_model = 8;
    c.n_layers = 2;
    c.n_heads = 2;
    c.max_seq = 16;
    c.moe_every = moe_every;
    c.d_ff_dense = 8;
    c.moe.d_model = 8;
    c.moe.d_ff = 4;
    c.moe.n_experts = n_experts;
    c.moe.n_shared = 1;
    c.moe.d_ff_shared = 4;
    c.router.n_experts = n_experts;
    c.router.k = 2;
    return c;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
        return 1;
    }
    const fs::path out = argv[1];
    // Model pairs: real moelab-lm files from LmModel::save, a few KB each.
    int i = 0;
    for (const auto& [every, n] : {std::pair{1, 4}, std::pair{2, 2}}) {
        const fs::path tmp = moe::fuzz::scratch_dir() / "seed.safetensors";
        moe::LmModel::init(small_lm(every, n), 1).save(tmp.string());
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
    std::printf("fuzz_seeds: wrote seeds under %s\n", out.string().c_str());
    fs::remove_all(moe::fuzz::scratch_dir());
    return 0;
}
