// moelab-cli subcommands. Each lives in cmd_<name>.cpp and is listed once in kCommands
// (moelab_cli.cpp). A command returns the process exit code; it throws moe::Error for bad
// input, which main() prints with a hint and turns into exit code 2.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine/backend.h"

namespace moe::cli {

using Args = std::span<const std::string>;

struct Command {
    const char* name;
    const char* summary;  // one line for `moelab-cli help`
    int (*run)(Args args);
};

// Small shared argument helpers: `--name value` options and flags.
struct ArgParser {
    ArgParser(std::string command, Args args);
    bool flag(std::string_view name);                         // --name present?
    std::string value(std::string_view name, std::string fallback);  // --name VALUE
    int int_value(std::string_view name, int fallback);
    float float_value(std::string_view name, float fallback);
    std::vector<std::string> positional() const;              // what is left, in order
    void finish();  // throws moe::Error naming any option nobody asked for

    std::string command;
    std::vector<std::string> rest;
};

// --device cpu|cuda (default cpu), read before finish(). device_backend() is that device's
// backend, or the CPU's after printing on stderr why the device cannot be used.
Device device_option(ArgParser& ap);
const Backend& device_backend(Device wanted, const std::string& where);
inline constexpr const char* kDeviceHelp =
    "  --device D        cpu or cuda: where the MoE layers run (falls back to cpu with a message)\n";

int cmd_demo(Args args);
int cmd_params(Args args);
int cmd_route(Args args);
int cmd_train(Args args);
int cmd_generate(Args args);
int cmd_mix2d(Args args);
int cmd_lesson(Args args);
int cmd_export(Args args);
int cmd_tokenize(Args args);
int cmd_hf_tiny(Args args);

}  // namespace moe::cli
