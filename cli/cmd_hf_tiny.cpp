// moelab-cli hf-tiny: write a tiny random checkpoint in a Hugging Face architecture's exact
// folder layout (core/models/hf/hf_tiny.h), to try the loader, the app and the CLI without a
// download.
#include <algorithm>
#include <cstdio>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/models/hf/hf_tiny.h"

namespace moe::cli {

int cmd_hf_tiny(Args args) {
    ArgParser ap("hf-tiny", args);
    std::string types;
    for (const std::string& t : hf::tiny_model_types()) types += (types.empty() ? "" : ", ") + t;
    if (ap.flag("--help") || ap.flag("-h")) {
        std::printf("usage: moelab-cli hf-tiny --type TYPE --out DIR [--dtype F32|BF16] [--shards 1] [--seed 1] [--yarn]\n"
                    "                         [--experts N] [--k K] [--layers L] [--tokenizer tokenizer.json]\n"
                    "  writes config.json, the weights (one file or shards + index) and tokenizer.json in\n"
                    "  the Hub layout of TYPE: %s\n"
                    "  --experts, --k, --layers: the shape (default 8 experts, K = 2, 3 or 4 layers; d_model stays 32)\n"
                    "  --tokenizer FILE: copy a real tokenizer.json in (the vocabulary follows it)\n", types.c_str());
        return 0;
    }
    const std::string where = "moelab-cli hf-tiny";
    hf::TinySpec s;
    s.model_type = ap.value("--type", "mixtral");
    s.dtype = ap.value("--dtype", "F32");
    s.n_shards = ap.int_value("--shards", 1);
    s.seed = static_cast<uint64_t>(ap.int_value("--seed", 1));
    s.yarn = ap.flag("--yarn");
    // 0 means "the default" inside TinySpec; typed on the command line, anything under 1 is a mistake.
    auto shape = [&](const char* flag) {
        const bool typed = std::find(ap.rest.begin(), ap.rest.end(), flag) != ap.rest.end();
        const int v = ap.int_value(flag, 0);
        if (typed && v < 1) throw Error(where, flag, "is " + std::to_string(v), "a positive number");
        return v;
    };
    s.n_experts = shape("--experts");
    s.k = shape("--k");
    s.n_layers = shape("--layers");
    s.tokenizer = ap.value("--tokenizer", "");
    const std::string out = ap.value("--out", "");
    ap.finish();
    if (!ap.positional().empty()) throw Error(where, ap.positional()[0], "is not an option of hf-tiny", "see --help");
    if (out.empty()) throw Error(where, "--out", "is missing", "the folder to write, e.g. --out /tmp/tiny-" + s.model_type);
    hf::write_tiny_checkpoint(out, s);
    std::printf("wrote a tiny %s checkpoint (%s, %d file%s) to %s\n", s.model_type.c_str(), s.dtype.c_str(), s.n_shards,
                s.n_shards > 1 ? "s" : "", out.c_str());
    return 0;
}

}  // namespace moe::cli
