// moelab-cli: the headless face of moelab. Links moe_core only.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "cli_main.h"
#include "commands.h"
#include "core/error.h"

namespace moe::cli {

// The one table of subcommands.
static const Command kCommands[] = {
    {"demo", "route a sample sentence through the built-in model and print what the router did", cmd_demo},
    {"params", "params CONFIG.json|DIR: total and active parameters and FLOPs per token", cmd_params},
    {"route", "route hidden states (random, a file, or --model M --text T) and write the trace", cmd_route},
    {"train", "train the tiny MoE language model or the 2D mixture of experts", cmd_train},
    {"generate", "generate text with a model (the built-in one or --model DIR)", cmd_generate},
    {"mix2d", "train the 2D mixture of local experts and watch collapse and its cures", cmd_mix2d},
    {"lesson", "lesson FILE: run a lesson headless and export its plots", cmd_lesson},
    {"export", "export a load plot or heatmap as PNG, SVG or CSV", cmd_export},
    {"tokenize", "text -> token ids and pieces with the byte tokenizer or a tokenizer.json", cmd_tokenize},
    {"hf-tiny", "write a tiny random Hugging Face MoE checkpoint of one architecture", cmd_hf_tiny},
};

static void print_help() {
    std::printf("moelab-cli: Mixture-of-Experts engine, headless\n\nusage: moelab-cli COMMAND [options]\n\n");
    for (const Command& c : kCommands) std::printf("  %-10s %s\n", c.name, c.summary);
    std::printf("\n`moelab-cli COMMAND --help` for a command's options.\n");
}

ArgParser::ArgParser(std::string cmd, Args args) : command(std::move(cmd)), rest(args.begin(), args.end()) {}

bool ArgParser::flag(std::string_view name) {
    for (auto it = rest.begin(); it != rest.end(); ++it) {
        if (*it == name) { rest.erase(it); return true; }
    }
    return false;
}

std::string ArgParser::value(std::string_view name, std::string fallback) {
    for (auto it = rest.begin(); it != rest.end(); ++it) {
        if (*it != name) continue;
        if (it + 1 == rest.end())
            throw Error("moelab-cli " + command, std::string(name), "is missing its value", "write " + std::string(name) + " VALUE");
        std::string v = *(it + 1);
        rest.erase(it, it + 2);
        return v;
    }
    return fallback;
}

int ArgParser::int_value(std::string_view name, int fallback) {
    const std::string v = value(name, "");
    if (v.empty()) return fallback;
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(v.c_str(), &end, 10);
    if (end == v.c_str() || *end != '\0' || errno == ERANGE || x < -2147483647L || x > 2147483647L)
        throw Error("moelab-cli " + command, std::string(name), "'" + v + "' is not an integer", "for example " + std::string(name) + " 2");
    return static_cast<int>(x);
}

float ArgParser::float_value(std::string_view name, float fallback) {
    const std::string v = value(name, "");
    if (v.empty()) return fallback;
    char* end = nullptr;
    errno = 0;
    const float x = std::strtof(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(x))
        throw Error("moelab-cli " + command, std::string(name), "'" + v + "' is not a finite number", "for example " + std::string(name) + " 1.25");
    return x;
}

std::vector<std::string> ArgParser::positional() const { return rest; }

void ArgParser::finish() {
    for (const std::string& a : rest) {
        if (a.size() > 2 && a.rfind("--", 0) == 0)
            throw Error("moelab-cli " + command, a, "is not an option of this command", "see moelab-cli " + command + " --help");
    }
}

Device device_option(ArgParser& ap) {
    return parse_device(ap.value("--device", "cpu"), "moelab-cli " + ap.command, "--device");
}

const Backend& device_backend(Device wanted, const std::string& where) {
    std::string why;
    const Device d = usable_device(wanted, &why);
    if (!why.empty()) std::fprintf(stderr, "%s: --device: %s\n", where.c_str(), why.c_str());
    return backend_for(d);
}

int cli_main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "help" || std::string(argv[1]) == "--help") {
        print_help();
        return argc < 2 ? 1 : 0;
    }
    const std::string name = argv[1];
    const std::vector<std::string> args(argv + 2, argv + argc);
    for (const Command& c : kCommands) {
        if (name != c.name) continue;
        try {
            return c.run(args);
        } catch (const moe::Error& e) {
            std::fprintf(stderr, "moelab-cli: error: %s\n", e.what());
            return 2;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "moelab-cli: error: %s\n", e.what());
            return 2;
        }
    }
    std::fprintf(stderr, "moelab-cli: unknown command '%s'\n\n", name.c_str());
    print_help();
    return 1;
}

}  // namespace moe::cli
