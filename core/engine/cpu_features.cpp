// Run-time choice of the packed kernels' instruction set (see cpu_features.h).
#include "core/engine/cpu_features.h"

#include <atomic>
#include <cctype>
#include <cstdlib>

#include "core/error.h"

namespace moe {

namespace {

CpuFeatures detect() {
    CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
    // libgcc's cpuid also checks XGETBV, so a feature the OS does not save registers for (AVX-512
    // under an old kernel or a VM that hides it) reads as absent.
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
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
