// Arbitrary bytes -> the built-in model's tokenizer -> a forward with knobs from the input, and
// the KV-cache steps of the first tokens against the full forward.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>

#include "core/models/lm.h"
#include "core/models/model.h"
#include "fuzz/fuzz_util.h"

namespace {
// The built-in model's architecture (byte LM, an MoE of 8 experts plus a shared one in every
// layer) at width 16 instead of the shipped 4 x 128, written once and opened through open_model
// like any file: the same code runs many times faster (exec/s before and after: docs/FUZZING.md).
const moe::Model& model() {
    static const std::unique_ptr<moe::Model> m = [] {
        const std::string path = (moe::fuzz::scratch_dir() / "forward-model.safetensors").string();
        moe::LmModel::init(moe::fuzz::small_lm(16, 8), 1).save(path);
        return moe::open_model(path);
    }();
    return *m;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const moe::Model& m = model();
    FuzzedDataProvider in(data, size);
    moe::ModelRunOptions opt;
    opt.router = m.info().trained_router;
    opt.router.scheme = static_cast<moe::Scheme>(in.ConsumeIntegralInRange(0, moe::kNumSchemes - 1));
    opt.router.k = in.ConsumeIntegralInRange(0, m.info().moe.n_experts + 1);
    opt.router.capacity_factor = in.ConsumeFloatingPointInRange(0.0f, 3.0f);
    opt.router.drop_policy = static_cast<moe::DropPolicy>(in.ConsumeIntegralInRange(0, 2));
    opt.router.shared_experts = in.ConsumeBool();
    const std::string text = in.ConsumeRemainingBytesAsString();
    return moe::fuzz::run_one([&] {
        const moe::Tokenizer& tok = m.tokenizer();
        std::vector<moe::TokenId> ids = tok.encode(text, true);
        if (tok.decode(ids, false) != text) moe::fuzz::fail("decode(encode(text)) != text");
        // 16 tokens: every scheme, capacity and KV-cache path is reached; max_seq is a unit test's job.
        if (ids.size() > 16) ids.resize(16);
        moe::ModelForward out;
        m.forward(ids, opt, out);
        if (out.logits.rows() != static_cast<int>(ids.size())) moe::fuzz::fail("one row of logits per token");
        if (!out.logits.allFinite()) moe::fuzz::fail("non-finite logits");
        // Dropless, token-independent routing: incremental decoding must agree with the full pass.
        const moe::Scheme s = opt.router.scheme;
        const bool per_token = s != moe::Scheme::ExpertChoice && s != moe::Scheme::Base && s != moe::Scheme::Sinkhorn &&
                               s != moe::Scheme::GShardTop2;  // its random second choice is drawn per batch position
        if (opt.router.drop_policy == moe::DropPolicy::Dropless && per_token) {
            const std::unique_ptr<moe::ModelState> st = m.new_state();
            moe::Vec logits;
            for (size_t t = 0; t < std::min<size_t>(ids.size(), 3); ++t) {
                m.step(*st, ids[t], opt, logits);
                if ((logits.transpose() - out.logits.row(static_cast<Eigen::Index>(t))).cwiseAbs().maxCoeff() > 1e-3f)
                    moe::fuzz::fail("KV-cache step differs from the full forward");
            }
        }
    });
}
