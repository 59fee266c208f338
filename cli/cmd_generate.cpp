// moelab-cli generate: sample text from the byte-level MoE language model with a KV cache.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/models/lm.h"

namespace moe::cli {

int cmd_generate(Args args) {
    ArgParser ap("generate", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        std::printf(
            "usage: moelab-cli generate --prompt TEXT [--n 200] [--temperature 0.8] [--seed 1] [--model PATH] [--device D]\n"
            "  --temperature 0 picks the most likely byte every time (greedy)\n"
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
    if (n < 0 || n > 100000) throw Error(where, "--n", "is " + std::to_string(n), "expected 0..100000 bytes");
    if (!(temperature >= 0.0f && temperature <= 10.0f))
        throw Error(where, "--temperature", "is " + std::to_string(temperature), "expected 0..10 (0 = greedy)");

    LmModel model = LmModel::load(path);
    model.set_backend(device_backend(device, where));
    const int max_seq = model.config().max_seq;
    LmRunOptions opt;
    opt.router = model.config().router;
    std::mt19937_64 rng(static_cast<uint64_t>(seed));
    std::string text = prompt;
    std::unique_ptr<LmModel::State> st = model.new_state();
    Vec logits;
    // Feeds the last part of the text into a fresh state: used at the start and whenever the
    // context (max_seq bytes) is full, keeping the most recent half.
    int pos = 0;  // bytes in the state's context
    auto refill = [&](size_t keep) {
        st = model.new_state();
        const size_t from = text.size() > keep ? text.size() - keep : 0;
        for (size_t i = from; i < text.size(); ++i) model.step(*st, static_cast<uint8_t>(text[i]), opt, logits);
        pos = static_cast<int>(text.size() - from);
    };
    refill(static_cast<size_t>(max_seq));
    std::printf("%s", prompt.c_str());
    std::fflush(stdout);
    std::vector<double> p(256);
    for (int i = 0; i < n; ++i) {
        int next = 0;
        if (temperature == 0.0f) {
            logits.maxCoeff(&next);
        } else {
            const float mx = logits.maxCoeff();
            for (int b = 0; b < 256; ++b) p[b] = std::exp((logits(b) - mx) / temperature);
            std::discrete_distribution<int> pick(p.begin(), p.end());
            next = pick(rng);
        }
        const char c = static_cast<char>(next);
        text += c;
        std::fputc(c, stdout);
        std::fflush(stdout);
        if (i + 1 == n) break;
        if (pos >= max_seq) {
            refill(static_cast<size_t>(max_seq / 2));
        } else {
            model.step(*st, static_cast<uint8_t>(next), opt, logits);
            ++pos;
        }
    }
    std::printf("\n");
    return 0;
}

}  // namespace moe::cli
