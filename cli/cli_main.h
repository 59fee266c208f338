// moelab-cli's main as a function, so the argument-vector fuzzer (fuzz/fuzz_cli.cpp) runs the
// real command line in-process; cli/main.cpp is the executable's main and calls it.
#pragma once

namespace moe::cli {

// Runs `moelab-cli argv[1] argv[2]...`: the process exit code (0 ok, 1 usage, 2 bad input, 3 a
// training run that diverged). Every exception a command throws is caught and printed here.
int cli_main(int argc, char** argv);

}  // namespace moe::cli
