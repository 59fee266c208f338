// Shared by the libFuzzer harnesses (fuzz/README in docs/FUZZING.md).
//
// Contract of every harness: an input is either accepted (and then the result is checked for
// consistency where a cheap check exists) or refused with moe::Error. Anything else is a
// finding: another exception type escapes LLVMFuzzerTestOneInput and aborts, a sanitizer
// report aborts, -timeout catches hangs and -rss_limit_mb / -malloc_limit_mb runaway
// allocations.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/models/lm.h"

namespace moe::fuzz {

inline std::string_view as_text(const uint8_t* data, size_t size) { return {reinterpret_cast<const char*>(data), size}; }

// Runs f; moe::Error is the expected answer to bad input and is swallowed.
template <class F>
int run_one(F&& f) {
    try {
        f();
    } catch (const moe::Error&) {
    }
    return 0;
}

// A finding that is not a crash (a broken round trip, an inconsistent result): abort so
// libFuzzer saves the input.
[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "fuzz: %s\n", what);
    std::abort();
}

// Splits "A" <sep> "B" at the first separator line; without one, all is A. Seeds written by
// fuzz_seeds use it for inputs made of two files (a model's .json and its .safetensors).
inline constexpr std::string_view kSeparator = "\n=====moelab-fuzz=====\n";
inline std::pair<std::string_view, std::string_view> split2(std::string_view in) {
    const size_t at = in.find(kSeparator);
    if (at == std::string_view::npos) return {in, {}};
    return {in.substr(0, at), in.substr(at + kSeparator.size())};
}

// A scratch folder of this process (readers that take paths get real files): under $TMPDIR if
// set, else /dev/shm (memory, not disk: several harnesses write files every execution), else /tmp. Removed at a normal exit; a crash leaves it for a look.
inline const std::filesystem::path& scratch_dir() {
    static const std::filesystem::path d = [] {
        namespace fs = std::filesystem;
        const char* tmp = std::getenv("TMPDIR");
        std::error_code ec;
        const fs::path base = tmp && *tmp ? fs::path(tmp) : fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::path("/tmp");
        fs::path p = base / ("moelab-fuzz-" + std::to_string(::getpid()));
        fs::create_directories(p);
        return p;
    }();
    static const bool cleanup = [] {
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(d, ec);
        });
        return true;
    }();
    (void)cleanup;
    return d;
}

// A byte LM small enough that loading and a forward take well under a millisecond.
inline moe::LmConfig small_lm(int d_model, int n_experts, int moe_every = 1) {
    moe::LmConfig c;
    c.d_model = d_model;
    c.n_layers = 2;
    c.n_heads = 2;
    c.max_seq = 64;
    c.moe_every = moe_every;
    c.d_ff_dense = d_model;
    c.moe.d_model = d_model;
    c.moe.d_ff = d_model / 2;
    c.moe.n_experts = n_experts;
    c.moe.n_shared = 1;
    c.router.n_experts = n_experts;
    c.router.k = 2;
    return c;
}

}  // namespace moe::fuzz
