// moelab-cli mix2d: train the 2D mixture of local experts and watch the router carve up the
// plane (or collapse onto a few experts) as an ASCII map, one letter per expert.
#include <cstdio>
#include <string>
#include <utility>

#include "commands.h"
#include "core/error.h"
#include "core/models/mix2d.h"

namespace moe::cli {

namespace {

void print_usage() {
    std::printf(
        "usage: moelab-cli mix2d [--steps N] [--balance none|switch|bias] [--seed S] [--experts N]\n"
        "                        [--every M] [--hidden H] [--lr X] [--alpha A] [--jitter EPS]\n"
        "                        [--zloss BETA] [--map WxH]\n"
        "Trains N small MLP experts on a 2D regression task (six regions, six target functions),\n"
        "routed by a linear router through the same routing code as the language model.\n"
        "  none    Switch top-1, no balancing: watch the router collapse onto a few experts\n"
        "  switch  Switch top-1 + load-balancing loss alpha * N * sum f_i P_i\n"
        "  bias    DeepSeek-V3 aux-loss-free bias: sigmoid scores + per-expert bias, top-2\n"
        "Every M steps prints the loss, the load CV and a map: expert letters, lower case where\n"
        "the top gate is below 0.5, '.' where no expert is routed.\n");
}

char expert_letter(int expert, float gate) {
    if (expert < 0) return '.';
    const char* upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const char* lower = "abcdefghijklmnopqrstuvwxyz";
    if (expert >= 26) return '#';
    return gate >= 0.5f ? upper[expert] : lower[expert];
}

void print_map(const Mix2dTrainer& trainer, int width, int height) {
    const Mix2dRegions regions = trainer.sample_regions(width, height);
    for (int r = 0; r < height; ++r) {
        std::string line = "  ";
        for (int c = 0; c < width; ++c) line += expert_letter(regions.expert[r * width + c], regions.gate[r * width + c]);
        std::printf("%s\n", line.c_str());
    }
}

void print_load(const std::vector<int>& load) {
    std::printf("  load:");
    for (size_t i = 0; i < load.size(); ++i)
        std::printf(" %c=%d", i < 26 ? static_cast<char>('A' + i) : '#', load[i]);
    std::printf("\n");
}

}  // namespace

int cmd_mix2d(Args args) {
    ArgParser ap("mix2d", args);
    if (ap.flag("--help")) {
        print_usage();
        return 0;
    }
    const int steps = ap.int_value("--steps", 600);
    const std::string balance_name = ap.value("--balance", "none");
    Mix2dConfig cfg;
    const int seed = ap.int_value("--seed", static_cast<int>(cfg.seed));
    cfg.n_experts = ap.int_value("--experts", cfg.n_experts);
    cfg.hidden = ap.int_value("--hidden", cfg.hidden);
    cfg.lr = ap.float_value("--lr", cfg.lr);
    cfg.alpha = ap.float_value("--alpha", cfg.alpha);
    cfg.jitter_eps = ap.float_value("--jitter", cfg.jitter_eps);
    const float zloss = ap.float_value("--zloss", 0.0f);
    const int every = ap.int_value("--every", 100);
    const std::string map = ap.value("--map", "48x16");
    ap.finish();
    if (!ap.positional().empty())
        throw Error("moelab-cli mix2d", ap.positional().front(), "is not an option of this command",
                    "see moelab-cli mix2d --help");

    if (steps < 0 || steps > 1000000)
        throw Error("moelab-cli mix2d", "--steps", "'" + std::to_string(steps) + "' is out of range", "0..1000000");
    if (every < 1)
        throw Error("moelab-cli mix2d", "--every", "'" + std::to_string(every) + "' is out of range", "at least 1");
    if (seed < 0) throw Error("moelab-cli mix2d", "--seed", "'" + std::to_string(seed) + "' is negative", "a seed >= 0");
    const std::optional<Mix2dBalance> balance = mix2d_balance_from_name(balance_name);
    if (!balance)
        throw Error("moelab-cli mix2d", "--balance", "'" + balance_name + "' is not a balancing recipe", "none, switch or bias");
    int map_w = 0, map_h = 0;
    char tail = 0;
    if (std::sscanf(map.c_str(), "%dx%d%c", &map_w, &map_h, &tail) != 2 || map_w < 1 || map_h < 1 || map_w > 200 || map_h > 100)
        throw Error("moelab-cli mix2d", "--map", "'" + map + "' is not WIDTHxHEIGHT", "for example --map 48x16 (at most 200x100)");
    cfg.seed = static_cast<uint64_t>(seed);
    cfg = apply_balance(cfg, *balance);
    if (zloss != 0.0f) {  // a negative beta reaches validate() and is reported as --zloss
        cfg.z_loss = true;
        cfg.beta = zloss;
    }

    // Knob errors name the option the user typed, not the config field behind it.
    try {
        validate(cfg);
    } catch (const Error& e) {
        static const std::pair<const char*, const char*> kOptionOf[] = {
            {"n_experts", "--experts"}, {"hidden", "--hidden"}, {"lr", "--lr"},
            {"alpha", "--alpha"},       {"jitter_eps", "--jitter"}, {"beta", "--zloss"}};
        for (const auto& [field, option] : kOptionOf)
            if (e.field() == field) throw Error("moelab-cli mix2d", option, e.problem(), e.hint());
        throw;
    }
    Mix2dTrainer trainer(cfg);
    std::printf("mix2d: %d experts (2 -> %d tanh -> 1), scheme %s, K=%d, balance %s, seed %d\n", cfg.n_experts,
                cfg.hidden, scheme_name(cfg.scheme), cfg.k, mix2d_balance_name(*balance), seed);
    for (int s = 1; s <= steps; ++s) {
        const Mix2dMetrics m = trainer.step();
        if (s % every != 0 && s != steps) continue;
        const Mix2dEval ev = trainer.evaluate();
        std::printf("\nstep %d  batch loss %.4f  eval loss %.4f  load CV %.2f  idle experts %d/%d  aux %.3f  z %.3f\n",
                    m.step, m.loss, ev.loss, ev.load_cv, ev.n_idle, cfg.n_experts, m.aux_loss, m.z_loss);
        print_load(ev.load);
        print_map(trainer, map_w, map_h);
    }
    return 0;
}

}  // namespace moe::cli
