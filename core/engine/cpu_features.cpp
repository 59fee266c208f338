// Run-time choice of the packed kernels' instruction set (see cpu_features.h).
#include "core/engine/cpu_features.h"

#include <atomic>
#include <cctype>
#include <cstdlib>

#include "core/engine/cpu_baseline.h"
#include "core/error.h"

#ifndef MOE_ARCH_NAME
#define MOE_ARCH_NAME "(compiler default)"
#endif

// What this file's flags (the project's, MOE_ARCH) let the compiler use, for the start-up check in
// cpu_baseline.cpp. Constant data so that the check reads it without running code built for
// MOE_ARCH.
namespace {
constexpr unsigned long long built_for_mask() {
    unsigned long long m = 0;
    auto set = [&m](moe::CpuFeatureBit b) { m |= 1ull << b; };
#ifdef __SSE3__
    set(moe::kSse3);
#endif
#ifdef __SSSE3__
    set(moe::kSsse3);
#endif
#ifdef __SSE4_1__
    set(moe::kSse41);
#endif
#ifdef __SSE4_2__
    set(moe::kSse42);
#endif
#ifdef __POPCNT__
    set(moe::kPopcnt);
#endif
#ifdef __AVX__
    set(moe::kAvx);
#endif
#ifdef __AVX2__
    set(moe::kAvx2);
#endif
#ifdef __FMA__
    set(moe::kFma);
#endif
#ifdef __BMI__
    set(moe::kBmi);
#endif
#ifdef __BMI2__
    set(moe::kBmi2);
#endif
#ifdef __F16C__
    set(moe::kF16c);
#endif
#ifdef __LZCNT__
    set(moe::kLzcnt);
#endif
#ifdef __MOVBE__
    set(moe::kMovbe);
#endif
#ifdef __AVX512F__
    set(moe::kAvx512F);
#endif
#ifdef __AVX512BW__
    set(moe::kAvx512Bw);
#endif
#ifdef __AVX512VL__
    set(moe::kAvx512Vl);
#endif
#ifdef __AVX512DQ__
    set(moe::kAvx512Dq);
#endif
#ifdef __AVX512CD__
    set(moe::kAvx512Cd);
#endif
#ifdef __AVX512VNNI__
    set(moe::kAvx512Vnni);
#endif
#ifdef __AVX512BF16__
    set(moe::kAvx512Bf16);
#endif
#ifdef __AVX512VBMI__
    set(moe::kAvx512Vbmi);
#endif
#ifdef __AVX512VBMI2__
    set(moe::kAvx512Vbmi2);
#endif
#ifdef __AVX512IFMA__
    set(moe::kAvx512Ifma);
#endif
#ifdef __AVX512BITALG__
    set(moe::kAvx512Bitalg);
#endif
#ifdef __AVX512VPOPCNTDQ__
    set(moe::kAvx512Vpopcntdq);
#endif
#ifdef __AVX512FP16__
    set(moe::kAvx512Fp16);
#endif
#ifdef __GFNI__
    set(moe::kGfni);
#endif
#ifdef __VPCLMULQDQ__
    set(moe::kVpclmulqdq);
#endif
#ifdef __AES__
    set(moe::kAes);
#endif
#ifdef __PCLMUL__
    set(moe::kPclmul);
#endif
#ifdef __SSE4A__
    set(moe::kSse4a);
#endif
    return m;
}
}  // namespace
extern "C" {
extern const unsigned long long moe_built_for_features_mask;
extern const char moe_built_for_arch_name[];
constinit const unsigned long long moe_built_for_features_mask = built_for_mask();
constinit const char moe_built_for_arch_name[] = MOE_ARCH_NAME;
}

namespace moe {

namespace {

// The kernels' features from the start-up check's cpuid reading (cpu_baseline.cpp: it also checks
// that the OS saves the AVX and AVX-512 registers), so there is one reader of cpuid.
CpuFeatures detect() {
    const unsigned long long have = supported_features();
    const auto has = [have](CpuFeatureBit b) { return (have >> b & 1) != 0; };
    CpuFeatures f;
    f.avx2 = has(kAvx2);
    f.fma = has(kFma);
    f.avx512f = has(kAvx512F);
    f.avx512bw = has(kAvx512Bw);
    f.avx512vl = has(kAvx512Vl);
    f.avx512bf16 = has(kAvx512Bf16);
    return f;
}

Isa widest_supported() {
    if (isa_supported(Isa::Avx512Bf16)) return Isa::Avx512Bf16;
    if (isa_supported(Isa::Avx512)) return Isa::Avx512;
    if (isa_supported(Isa::Avx2)) return Isa::Avx2;
    return Isa::Portable;
}

std::string what_cpuid_found() {
    const CpuFeatures& f = cpu_features();
    if (isa_supported(Isa::Avx512))
        return f.avx512bf16 ? "cpuid: AVX-512 F/BW/VL, AVX512_BF16" : "cpuid: AVX-512 F/BW/VL, no AVX512_BF16";
    if (isa_supported(Isa::Avx2)) return "cpuid: AVX2+FMA, no AVX-512";
    return "cpuid: no AVX2+FMA";
}

const char* missing(Isa isa) {
    switch (isa) {
        case Isa::Avx512Bf16: return "AVX-512 F/BW/VL with AVX512_BF16";
        case Isa::Avx512: return "AVX-512 F/BW/VL";
        case Isa::Avx2: return "AVX2+FMA";
        case Isa::Portable: return "";
    }
    return "";
}

struct Choice {
    Isa isa;
    std::string reason;
};

// MOE_ISA never throws: a typo must not stop the app; the reason line says what happened.
Choice initial_choice() {
    const Isa best = widest_supported();
    const char* env = std::getenv("MOE_ISA");
    if (!env || !*env) return {best, what_cpuid_found()};
    std::string v = env;
    for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (Isa isa : kAllIsas) {
        if (v != isa_name(isa)) continue;
        if (isa_supported(isa)) return {isa, "MOE_ISA=" + v + "; " + what_cpuid_found()};
        return {best, "MOE_ISA=" + v + " asked for, but this CPU lacks " + missing(isa) + "; " + what_cpuid_found()};
    }
    return {best, "MOE_ISA='" + std::string(env) + "' is not portable, avx2, avx512 or avx512bf16, ignored; " +
                      what_cpuid_found()};
}

Choice& choice() {
    static Choice c = initial_choice();
    return c;
}
std::atomic<int> g_active{-1};  // Isa as int once decided

}  // namespace

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

bool isa_supported(Isa isa) {
    const CpuFeatures& f = cpu_features();
    switch (isa) {
        case Isa::Portable: return true;
        case Isa::Avx2: return f.avx2 && f.fma;
        case Isa::Avx512: return f.avx512f && f.avx512bw && f.avx512vl && f.avx2 && f.fma;
        case Isa::Avx512Bf16: return isa_supported(Isa::Avx512) && f.avx512bf16;
    }
    return false;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Portable: return "portable";
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
        case Isa::Avx512Bf16: return "avx512bf16";
    }
    return "?";
}

Isa active_isa() {
    const int a = g_active.load(std::memory_order_relaxed);
    if (a >= 0) return static_cast<Isa>(a);
    const Isa isa = choice().isa;  // thread-safe static initialisation
    g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
    return isa;
}

std::string isa_reason() {
    const Isa isa = active_isa();
    return std::string(isa_name(isa)) + " (" + choice().reason + ")";
}

void set_isa(Isa isa) {
    if (!isa_supported(isa))
        throw Error("kernels", "isa", std::string("this CPU cannot run ") + isa_name(isa) + ": it lacks " + missing(isa),
                    "use one isa_supported() accepts");
    active_isa();  // decide the initial choice first, so it cannot overwrite this one later
    choice().reason = std::string("set_isa(") + isa_name(isa) + "); " + what_cpuid_found();
    g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace moe
