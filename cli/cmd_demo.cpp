// moelab-cli demo: the README's "try it" command. Routes a sentence through the built-in model
// and prints, per MoE layer, which experts each byte went to with their gates, then the model's
// guess for the next byte.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/models/lm.h"
#include "core/models/model.h"

namespace moe::cli {

namespace {
// A byte as a short printable label: letters as themselves, space as '_', others as hex.
std::string byte_label(int b) {
    if (b == ' ') return "_";
    if (b == '\n') return "\\n";
    if (b > 32 && b < 127) return std::string(1, static_cast<char>(b));
    char buf[8];
    std::snprintf(buf, sizeof buf, "x%02X", b);
    return buf;
}

// A token as a short label: a one-byte token as byte_label(), a longer one as its text.
std::string token_label(const Tokenizer& tok, TokenId id) {
    const std::string bytes = tok.token_bytes(id);
    return bytes.size() == 1 ? byte_label(static_cast<uint8_t>(bytes[0])) : bytes;
}
}  // namespace

int cmd_demo(Args args) {
    ArgParser ap("demo", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        std::printf("usage: moelab-cli demo [--text TEXT] [--model PATH] [--k K] [--device D]\n"
                    "  routes TEXT (default: a sample sentence) through the built-in MoE language model or the\n"
                    "  model at PATH (a moelab model file or a Hugging Face model folder)\n"
                    "%s", kDeviceHelp);
        return 0;
    }
    const std::string where = "moelab-cli demo";
    const std::string text = ap.value("--text", "The quick brown fox: 3 + 4 = 7. Der Hund, el perro.");
    const std::string path = ap.value("--model", builtin_model_path());
    const int k = ap.int_value("--k", 0);
    const Device device = device_option(ap);
    ap.finish();
    if (!ap.positional().empty())
        throw Error(where, ap.positional()[0], "is not an option of this command", "use --text \"...\"");
    std::unique_ptr<Model> model = open_model(path);
    model->set_backend(device_backend(device, where));
    const ModelInfo& c = model->info();
    const Tokenizer& tok = model->tokenizer();
    const std::vector<TokenId> bytes = tok.encode(text, false);
    if (bytes.empty() || static_cast<int>(bytes.size()) > c.max_seq)
        throw Error(where, "--text", "has " + std::to_string(bytes.size()) + " tokens", "expected 1.." + std::to_string(c.max_seq));
    ModelRunOptions opt;
    opt.router = c.trained_router;
    if (k != 0) opt.router.k = k;  // validated by the forward pass
    ModelForward out;
    model->forward(bytes, opt, out);

    std::printf("model %s: %d layers, %d experts per MoE layer, routing %s K=%d, %d shared expert(s)\n",
                path.c_str(), c.n_layers, c.moe.n_experts, scheme_name(opt.router.scheme), opt.router.k, c.moe.n_shared);
    std::printf("text: \"%s\"\n\n%s ", text.c_str(), tok.name() == "byte" ? "byte" : "token");
    for (size_t i = 0; i < out.traces.size(); ++i) std::printf("| layer %-2d experts (gate)     ", out.trace_layer[i]);
    std::printf("\n");
    for (int t = 0; t < static_cast<int>(bytes.size()); ++t) {
        std::printf("%-4s ", token_label(tok, bytes[t]).c_str());
        for (const RoutingTrace& tr : out.traces) {
            std::string cell;
            for (const RoutedPair& p : tr.token_pairs(t)) {
                char buf[32];
                std::snprintf(buf, sizeof buf, "e%d %.2f%s ", p.expert, p.gate, p.dropped ? "(dropped)" : "");
                cell += buf;
            }
            std::printf("| %-26s", cell.c_str());
        }
        std::printf("\n");
    }
    std::printf("\nexpert load per layer (%s routed to each expert):\n", tok.name() == "byte" ? "bytes" : "tokens");
    for (size_t i = 0; i < out.traces.size(); ++i) {
        std::printf("  layer %d:", out.trace_layer[i]);
        for (int load : out.traces[i].expert_load) std::printf(" %3d", load);
        std::printf("   load CV %.2f\n", out.traces[i].stats.load_cv);
    }
    std::printf("\nnext %s after \"%s\":", tok.name() == "byte" ? "byte" : "token", text.c_str());
    const RowVec last = out.logits.row(out.logits.rows() - 1);
    for (const auto& [b, p] : top_next_bytes(last, 5)) std::printf("  '%s' %.1f%%", token_label(tok, b).c_str(), 100.0 * p);
    std::printf("\n");
    return 0;
}

}  // namespace moe::cli
