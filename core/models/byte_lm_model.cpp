// The built-in byte LM as a Model: ids are bytes (vocab 256).
#include "core/models/byte_lm_model.h"

#include <utility>

#include "core/error.h"

namespace moe {

namespace {

struct ByteLmState final : ModelState {
    std::unique_ptr<LmModel::State> lm;
};

class ByteLmModel final : public Model {
public:
    ByteLmModel(LmModel lm, std::string source) : lm_(std::move(lm)) {
        const LmConfig& c = lm_.config();
        info_.name = source.empty() ? "built-in byte MoE LM (random weights)" : "built-in byte MoE LM";
        info_.source = std::move(source);
        info_.vocab = c.vocab;
        info_.d_model = c.d_model;
        info_.n_layers = c.n_layers;
        info_.max_seq = c.max_seq;
        info_.moe = c.moe;
        info_.trained_router = c.router;
        info_.trained_router.n_experts = c.moe.n_experts;
        for (int l = 0; l < c.n_layers; ++l)
            if (is_moe_layer(c, l)) info_.moe_layer_index.push_back(l);
        info_.counted = byte_lm_param_config(c);
    }

    const ModelInfo& info() const override { return info_; }
    const Tokenizer& tokenizer() const override { return *tokenizer_; }
    int64_t n_params() const override { return lm_.n_params(); }
    void set_backend(const Backend& backend) override { lm_.set_backend(backend); }

    void forward(std::span<const TokenId> tokens, const ModelRunOptions& opt, ModelForward& out) const override {
        check_tokens(tokens, info_.vocab, info_.max_seq, "byte LM forward");
        std::vector<uint8_t> bytes(tokens.size());
        for (size_t i = 0; i < tokens.size(); ++i) bytes[i] = static_cast<uint8_t>(tokens[i]);
        lm_.forward(bytes, opt, out);
    }

    std::unique_ptr<ModelState> new_state() const override {
        auto st = std::make_unique<ByteLmState>();
        st->lm = lm_.new_state();
        return st;
    }

    void step(ModelState& st, TokenId token, const ModelRunOptions& opt, Vec& logits,
              std::vector<RoutingTrace>* traces) const override {
        auto* s = dynamic_cast<ByteLmState*>(&st);
        MOE_ASSERT(s != nullptr, "a state from another model was passed to the byte LM");
        if (token < 0 || token >= info_.vocab)
            throw Error("byte LM step", "token", "is " + num(token), "expected a byte id in [0, 255]");
        lm_.step(*s->lm, static_cast<uint8_t>(token), opt, logits, traces);
        s->pos = s->lm->pos;
    }

    std::vector<MoeLayer*> moe_layers() override {
        std::vector<MoeLayer*> layers;
        for (LmBlock& b : lm_.impl().blocks)
            if (b.moe) layers.push_back(b.moe.get());
        return layers;
    }

private:
    LmModel lm_;
    std::unique_ptr<Tokenizer> tokenizer_ = make_byte_tokenizer();  // one id per byte
    ModelInfo info_;
};

}  // namespace

ModelConfig byte_lm_param_config(const LmConfig& lm) {
    ModelConfig c;
    c.source = "built-in byte LM";
    c.model_type = "moelab";
    c.vocab_size = lm.vocab;
    c.d_model = lm.d_model;
    c.n_layers = lm.n_layers;
    c.tied_embeddings = lm.tie_embeddings;
    c.attention = AttentionKind::MHA;
    c.n_heads = lm.n_heads;
    c.n_kv_heads = lm.n_heads;
    c.head_dim = lm.n_heads > 0 ? lm.d_model / lm.n_heads : 0;
    c.gated_ffn = lm.moe.activation == Activation::SwiGLU;
    c.d_ff_dense = lm.d_ff_dense;
    c.d_ff_expert = lm.moe.d_ff;
    c.n_experts = lm.moe.n_experts;
    c.k = lm.router.k;
    c.n_shared = lm.moe.n_shared;
    c.d_ff_shared = lm.moe.d_ff_shared > 0 ? lm.moe.d_ff_shared : lm.moe.d_ff;
    c.router_bias = lm.moe.router_bias;
    c.moe_layer.resize(static_cast<size_t>(std::max(0, lm.n_layers)));
    for (int i = 0; i < lm.n_layers; ++i) c.moe_layer[static_cast<size_t>(i)] = is_moe_layer(lm, i);
    return c;
}

std::unique_ptr<Model> make_byte_lm_model(LmModel lm, std::string source) {
    return std::make_unique<ByteLmModel>(std::move(lm), std::move(source));
}

}  // namespace moe
