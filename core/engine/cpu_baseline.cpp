// The start-up CPU check (cpu_baseline.h). This file is compiled for plain x86-64 whatever MOE_ARCH
// says (core/CMakeLists.txt) and calls only C functions: an inline library template would be
// merged by the linker with a copy compiled for MOE_ARCH and could run a wider instruction here.
// (The lambda below is local to this file, so no other copy of it exists.)
#include "core/engine/cpu_baseline.h"

#include <errno.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <string.h>
#include <unistd.h>

namespace moe {

namespace {

// Appends `s` to out[0..n), always NUL-terminated; `len` is the running length.
void append(char* out, std::size_t n, std::size_t& len, const char* s) {
    while (*s && len + 1 < n) out[len++] = *s++;
    if (n > 0) out[len < n ? len : n - 1] = '\0';
}

}  // namespace

// Data, not code: defined in cpu_features.cpp (built for MOE_ARCH, so its macros say what the
// compiler was allowed to use) and constant-initialised, so reading them runs nothing wide.
extern "C" const unsigned long long moe_built_for_features_mask;
extern "C" const char moe_built_for_arch_name[];

unsigned long long built_for_features() { return moe_built_for_features_mask; }
const char* built_for_arch() { return moe_built_for_arch_name; }

unsigned long long supported_features() {
    unsigned long long m = 0;
#if defined(__x86_64__) || defined(__i386__)
    // cpuid itself rather than __builtin_cpu_supports: clang 14's knows no f16c, lzcnt, movbe or
    // avx512fp16. A feature that needs register state the OS does not save (XGETBV) reads as
    // absent, as libgcc's check does.
    auto set = [&m](CpuFeatureBit b, bool on) {
        if (on) m |= 1ull << b;
    };
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned c1 = c;
    unsigned long long xcr0 = 0;
    if (c1 >> 27 & 1) {  // OSXSAVE: xgetbv is there
        unsigned lo = 0, hi = 0;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
    }
    const bool os_avx = (xcr0 & 0x6) == 0x6;             // XMM and YMM state
    const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM0-15 high, ZMM16-31
    set(kSse3, c1 & 1);
    set(kPclmul, c1 >> 1 & 1);
    set(kSsse3, c1 >> 9 & 1);
    set(kSse41, c1 >> 19 & 1);
    set(kSse42, c1 >> 20 & 1);
    set(kMovbe, c1 >> 22 & 1);
    set(kPopcnt, c1 >> 23 & 1);
    set(kAes, c1 >> 25 & 1);
    set(kAvx, os_avx && (c1 >> 28 & 1));
    set(kFma, os_avx && (c1 >> 12 & 1));
    set(kF16c, os_avx && (c1 >> 29 & 1));
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        set(kBmi, b >> 3 & 1);
        set(kBmi2, b >> 8 & 1);
        set(kAvx2, os_avx && (b >> 5 & 1));
        set(kAvx512F, os_avx512 && (b >> 16 & 1));
        set(kAvx512Dq, os_avx512 && (b >> 17 & 1));
        set(kAvx512Ifma, os_avx512 && (b >> 21 & 1));
        set(kAvx512Cd, os_avx512 && (b >> 28 & 1));
        set(kAvx512Bw, os_avx512 && (b >> 30 & 1));
        set(kAvx512Vl, os_avx512 && (b >> 31 & 1));
        set(kAvx512Vbmi, os_avx512 && (c >> 1 & 1));
        set(kAvx512Vbmi2, os_avx512 && (c >> 6 & 1));
        set(kGfni, c >> 8 & 1);
        set(kVpclmulqdq, os_avx && (c >> 10 & 1));
        set(kAvx512Vnni, os_avx512 && (c >> 11 & 1));
        set(kAvx512Bitalg, os_avx512 && (c >> 12 & 1));
        set(kAvx512Vpopcntdq, os_avx512 && (c >> 14 & 1));
        set(kAvx512Fp16, os_avx512 && (d >> 23 & 1));
        const unsigned max_sub = a;
        if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) set(kAvx512Bf16, os_avx512 && (a >> 5 & 1));
    }
    if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) {
        set(kLzcnt, c >> 5 & 1);
        set(kSse4a, c >> 6 & 1);
    }
#endif
    return m;
}

bool cpu_baseline_message(unsigned long long required, unsigned long long supported, const char* arch,
                          const char* program, char* out, std::size_t n) {
    const unsigned long long missing = required & ~supported;
    if (missing == 0) return false;
    std::size_t len = 0;
    if (n > 0) out[0] = '\0';
    append(out, n, len, program && *program ? program : "moelab");
    append(out, n, len, ": this build's code is compiled for MOE_ARCH=");
    append(out, n, len, arch);
    append(out, n, len, " and this CPU lacks");
    for (unsigned i = 0; i < kCpuFeatureCount; ++i) {
        if (!(missing >> i & 1)) continue;
        append(out, n, len, " ");
        append(out, n, len, kCpuFeatureNames[i]);
    }
    append(out, n, len,
           ". Rebuild it with cmake -DMOE_ARCH=x86-64 (any x86-64 CPU) or -DMOE_ARCH=native on this "
           "machine; the MoE kernels pick this CPU's widest instruction set at run time either way.\n");
    return true;
}

namespace {

// Priority 101: before every C++ static initialiser of the program (they run at the default
// priority), so nothing compiled for MOE_ARCH has run yet.
__attribute__((constructor(101))) void check_cpu_baseline() {
    char line[512];
    if (!cpu_baseline_message(built_for_features(), supported_features(), built_for_arch(),
                              program_invocation_short_name, line, sizeof line))
        return;
    ssize_t unused = write(STDERR_FILENO, line, strlen(line));
    (void)unused;
    _exit(2);
}

}  // namespace

}  // namespace moe

// Referenced by the link (core/CMakeLists.txt: --undefined) so every program that links moe_core
// keeps this file, and with it the constructor, even when it calls nothing here.
extern "C" {
extern const int moe_cpu_baseline_anchor;
const int moe_cpu_baseline_anchor = 1;
}
