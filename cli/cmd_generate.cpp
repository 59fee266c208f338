// moelab-cli generate: sample text from a model (the built-in byte LM by default) with a KV cache.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/models/lm.h"
#include "core/models/model.h"

namespace moe::cli {

int cmd_generate(Args args) {
    ArgParser ap("generate", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        std::printf(
            "usage: moelab-cli generate --prompt TEXT [--n 200] [--temperature 0.8] [--seed 1] [--model PATH] [--device D]\n"
            "  --temperature 0 picks the most likely token every time (greedy)\n"
            "  --model PATH: a moelab model file or a Hugging Face model folder (default: the built-in model)\n"
            "%s", kDeviceHelp);
        return 0;
    }
    const std::string where = "moelab-cli generate";
    const std::string prompt = ap.value("--prompt", "");
    const int n = ap.int_value("--n", 200);
    const float temperature = ap.float_value("--temperature", 0.8f);
    const int seed = ap.int_value("--seed", 1);
    const std::string path = ap.value("--model", builtin_model_path());
    const Device device = device_option(ap);
    ap.finish();
    if (!ap.positional().empty())
        throw Error(where, ap.positional()[0], "is not an option of this command", "put the text after --prompt");
    if (prompt.empty()) throw Error(where, "--prompt", "is missing or empty", "for example --prompt \"The \"");
    if (n < 0 || n > 100000) throw Error(where, "--n", "is " + std::to_string(n), "expected 0..100000 tokens");
    if (!(temperature >= 0.0f && temperature <= 10.0f))
        throw Error(where, "--temperature", "is " + std::to_string(temperature), "expected 0..10 (0 = greedy)");

    std::unique_ptr<Model> model = open_model(path);
    model->set_backend(device_backend(device, where));
    const Tokenizer& tok = model->tokenizer();
    const int max_seq = model->info().max_seq;
    // Real checkpoints pad the vocabulary past the tokenizer's (OLMoE: 50304 rows, 50280 tokens):
    // those ids have no text, so only the tokenizer's ids are sampled.
    const int vocab = std::min(model->info().vocab, tok.vocab_size());
    ModelRunOptions opt;
    opt.router = model->info().trained_router;
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    std::vector<TokenId> text = tok.encode(prompt, false);
    if (text.empty()) throw Error(where, "--prompt", "encodes to no tokens", "give some text");
    std::unique_ptr<ModelState> st = model->new_state();
    Vec logits;
    // Feeds the last part of the text into a fresh state: used at the start and whenever the
    // context (max_seq tokens) is full, keeping the most recent half.
    int pos = 0;  // tokens in the state's context
    auto refill = [&](size_t keep) {
        st = model->new_state();
        const size_t from = text.size() > keep ? text.size() - keep : 0;
        for (size_t i = from; i < text.size(); ++i) model->step(*st, text[i], opt, logits);
        pos = static_cast<int>(text.size() - from);
    };
    refill(static_cast<size_t>(max_seq));
    std::printf("%s", prompt.c_str());
    std::fflush(stdout);
    std::vector<double> p(static_cast<size_t>(vocab));
    for (int i = 0; i < n; ++i) {
        int next = 0;
        if (temperature == 0.0f) {
            logits.head(vocab).maxCoeff(&next);
        } else {
            const float mx = logits.head(vocab).maxCoeff();
            for (int b = 0; b < vocab; ++b) p[static_cast<size_t>(b)] = std::exp((logits(b) - mx) / temperature);
            std::discrete_distribution<int> pick(p.begin(), p.end());
            next = pick(rng);
        }
        text.push_back(next);
        const std::string piece = tok.token_bytes(next);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
        if (i + 1 == n) break;
        if (pos >= max_seq) {
            refill(static_cast<size_t>(max_seq / 2));
        } else {
            model->step(*st, next, opt, logits);
            ++pos;
        }
    }
    std::printf("\n");
    return 0;
}

}  // namespace moe::cli
