// Opening a model by path, and what every model shares: input checks, the next-token loss.
#include "core/models/model.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/models/byte_lm_model.h"
#include "core/models/hf/hf_model.h"
#include "core/models/lm.h"
#include "core/models/model_open.h"

namespace moe {

std::vector<const MoeLayer*> Model::moe_layers() const {
    // The non-const form only hands out pointers; nothing is changed through them here.
    std::vector<MoeLayer*> layers = const_cast<Model*>(this)->moe_layers();
    return {layers.begin(), layers.end()};
}

std::unique_ptr<Model> open_model(const std::string& path) {
    if (path.empty() || path == "builtin") return make_byte_lm_model(LmModel::load(builtin_model_path()), builtin_model_path());
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) return hf::open_hf_model(path);
    return make_byte_lm_model(LmModel::load(path), path);
}

std::unique_ptr<Model> open_model(const std::string& path, const OpenModelOptions& opt) {
    std::error_code ec;
    if (!path.empty() && path != "builtin" && std::filesystem::is_directory(path, ec)) return hf::open_hf_model(path, opt);
    return open_model(path);
}

uint64_t model_memory_bytes(const std::string& path) {
    std::error_code ec;
    if (!path.empty() && path != "builtin" && std::filesystem::is_directory(path, ec)) return hf::hf_model_memory_bytes(path);
    const uint64_t n = std::filesystem::file_size(path.empty() || path == "builtin" ? builtin_model_path() : path, ec);
    return ec ? 0 : n;  // the byte LM's file is float32: its size is what it takes
}

std::unique_ptr<Model> random_builtin_model(uint64_t seed) {
    return make_byte_lm_model(LmModel::init(LmConfig{}, seed), "");
}

void check_tokens(std::span<const TokenId> tokens, int vocab, int max_seq, const char* where) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (n < 1 || n > max_seq)
        throw Error(where, "tokens", "has length " + num(n), "expected 1.." + num(max_seq) + " tokens (the model's context)");
    for (size_t i = 0; i < tokens.size(); ++i)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            throw Error(where, "token " + num(static_cast<int64_t>(i)), "is id " + num(tokens[i]),
                        "expected an id in [0, " + num(vocab) + ")");
}

double next_token_loss(ConstMatRef logits, std::span<const TokenId> tokens) {
    const Eigen::Index n = std::min<Eigen::Index>(logits.rows(), static_cast<Eigen::Index>(tokens.size()));
    if (n < 2) return std::numeric_limits<double>::quiet_NaN();
    double sum = 0.0;
    for (Eigen::Index t = 0; t + 1 < n; ++t) {
        const Eigen::Ref<const RowVec> row = logits.row(t);
        const double mx = row.maxCoeff();
        double z = 0.0;
        for (Eigen::Index v = 0; v < row.size(); ++v) z += std::exp(static_cast<double>(row[v]) - mx);
        const TokenId next = tokens[static_cast<size_t>(t + 1)];
        MOE_ASSERT(next >= 0 && next < row.size(), "token ids were checked against the vocabulary by forward()");
        sum += mx + std::log(z) - static_cast<double>(row[next]);
    }
    return sum / static_cast<double>(n - 1);
}

}  // namespace moe
