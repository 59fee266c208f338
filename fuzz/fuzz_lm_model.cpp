// The moelab model pair: a byte LM's .json config and its .safetensors weights, given as one
// input split at fuzz_util.h's separator line, written to a scratch folder and loaded the way
// the app and the CLI load them. A model that loads must run a forward.
#include <fstream>

#include "core/models/lm.h"
#include "fuzz/fuzz_util.h"

namespace {
void write(const std::filesystem::path& p, std::string_view bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const auto [config, weights] = moe::fuzz::split2(moe::fuzz::as_text(data, size));
    const std::filesystem::path dir = moe::fuzz::scratch_dir();
    write(dir / "model.json", config);
    write(dir / "model.safetensors", weights);
    return moe::fuzz::run_one([&] {
        const moe::LmModel m = moe::LmModel::load((dir / "model.safetensors").string());
        const std::string text = "MoE";
        moe::LmForward out;
        moe::LmRunOptions opt;
        opt.router = m.config().router;  // the routing it was trained with
        m.forward({reinterpret_cast<const uint8_t*>(text.data()), text.size()}, opt, out);
        if (out.logits.rows() != 3 || out.logits.cols() != m.config().vocab) moe::fuzz::fail("forward shape");
    });
}
