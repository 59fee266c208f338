// A Hugging Face model folder -> open_model (core/models/hf/: config.json, model.safetensors or
// shards + model.safetensors.index.json, tokenizer.json), then a forward of 1-3 tokens if it
// loads. The input is the folder's files, each after a separator line and a name line:
//   <config.json> [SEP name\n<bytes>]...     (SEP = fuzz_util.h's kSeparator)
// Seeds: every architecture's tiny checkpoint from hf::write_tiny_checkpoint (fuzz_seeds), one
// file and sharded. Names are checked here (only plain file names; no '/', no "..") so nothing is
// written outside this process's scratch folder; the loader never sees a name it did not ask for.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <vector>

#include "core/models/model.h"
#include "fuzz/fuzz_util.h"

namespace {

bool plain_name(std::string_view n) {
    if (n.empty() || n.size() > 64 || n == "." || n == "..") return false;
    for (const char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) return false;
    return n.find("..") == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    namespace fs = std::filesystem;
    const fs::path dir = moe::fuzz::scratch_dir() / "hf";
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::string_view rest = moe::fuzz::as_text(data, size);
    std::string_view name = "config.json";
    for (int files = 0; files < 8; ++files) {
        const std::pair<std::string_view, std::string_view> parts = moe::fuzz::split2(rest);
        if (!plain_name(name)) return 0;
        std::ofstream f(dir / std::string(name), std::ios::binary | std::ios::trunc);
        f.write(parts.first.data(), static_cast<std::streamsize>(parts.first.size()));
        if (parts.second.empty()) break;
        const size_t eol = parts.second.find('\n');
        if (eol == std::string_view::npos) break;
        name = parts.second.substr(0, eol);
        rest = parts.second.substr(eol + 1);
    }
    return moe::fuzz::run_one([&] {
        const std::unique_ptr<moe::Model> m = moe::open_model(dir.string());
        const int vocab = m->info().vocab;
        if (vocab < 1) moe::fuzz::fail("a loaded model with no vocabulary");
        const int n = std::min(3, std::max(1, m->info().max_seq));
        std::vector<moe::TokenId> ids;
        for (int t = 0; t < n; ++t) ids.push_back(static_cast<moe::TokenId>((t * 7919) % vocab));
        moe::ModelRunOptions opt;
        opt.router = m->info().trained_router;
        moe::ModelForward out;
        m->forward(ids, opt, out);
        if (out.logits.rows() != n || out.logits.cols() != vocab) moe::fuzz::fail("logits shape");
    });
}
