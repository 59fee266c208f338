// core/engine/cpu_baseline.h: what the code outside the kernels was built for (MOE_ARCH), the
// start-up check's message, and the real thing: moelab-cli run on an emulated older CPU (qemu
// user mode) either works, with the kernels that CPU has, or stops with that message instead of
// an illegal instruction.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/engine/cpu_baseline.h"
#include "core/engine/cpu_features.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

unsigned long long bits(std::initializer_list<CpuFeatureBit> list) {
    unsigned long long m = 0;
    for (CpuFeatureBit b : list) m |= 1ull << b;
    return m;
}

// The psABI levels, as GCC 12's -march=x86-64-vN defines them (the extensions this table knows).
const unsigned long long kV2 = bits({kSse3, kSsse3, kSse41, kSse42, kPopcnt});
const unsigned long long kV3 = kV2 | bits({kAvx, kAvx2, kFma, kBmi, kBmi2, kF16c, kLzcnt, kMovbe});
const unsigned long long kV4 = kV3 | bits({kAvx512F, kAvx512Bw, kAvx512Vl, kAvx512Dq, kAvx512Cd});

std::string names(unsigned long long m) {
    std::string s;
    for (unsigned i = 0; i < kCpuFeatureCount; ++i)
        if (m >> i & 1) s += std::string(s.empty() ? "" : " ") + kCpuFeatureNames[i];
    return s;
}

TEST(CpuBaseline, MessageNamesEveryMissingExtensionAndTheRebuild) {
    char line[512];
    EXPECT_FALSE(cpu_baseline_message(kV3, kV4, "x86-64-v3", "moelab", line, sizeof line)) << "nothing missing";
    EXPECT_FALSE(cpu_baseline_message(0, 0, "x86-64", "moelab", line, sizeof line));

    ASSERT_TRUE(cpu_baseline_message(kV4 | bits({kAvx512Bf16}), kV3, "native", "moelab-cli", line, sizeof line));
    const std::string m = line;
    EXPECT_EQ(m.rfind("moelab-cli: ", 0), 0u) << m;
    EXPECT_NE(m.find("MOE_ARCH=native"), std::string::npos) << m;
    EXPECT_NE(m.find("lacks avx512f avx512bw avx512vl avx512dq avx512cd avx512bf16."), std::string::npos) << m;
    EXPECT_EQ(m.find(" avx2"), std::string::npos) << "the CPU has AVX2: " << m;
    EXPECT_NE(m.find("-DMOE_ARCH=x86-64 "), std::string::npos) << m;
    EXPECT_EQ(m.back(), '\n');

    // A short buffer is cut, never overrun, and stays a C string.
    char small[20];
    std::memset(small, 'x', sizeof small);
    ASSERT_TRUE(cpu_baseline_message(kV3, 0, "x86-64-v3", "moelab", small, 16));
    EXPECT_EQ(std::string(small), std::string("moelab: this bu"));
    EXPECT_EQ(small[16], 'x');
    EXPECT_TRUE(cpu_baseline_message(kV3, 0, "x86-64-v3", nullptr, line, sizeof line));
    EXPECT_EQ(std::string(line).rfind("moelab: ", 0), 0u) << "a missing program name reads as moelab";
}

TEST(CpuBaseline, BuiltForIsWhatMoeArchAllows) {
    const std::string arch = built_for_arch();
    const unsigned long long built = built_for_features();
    SCOPED_TRACE("MOE_ARCH=" + arch + ", built for: " + names(built) + "; this CPU: " + names(supported_features()));
    if (arch == "x86-64") EXPECT_EQ(built, 0u);
    else if (arch == "x86-64-v2") EXPECT_EQ(built, kV2);
    else if (arch == "x86-64-v3") EXPECT_EQ(built, kV3) << "the default must not leak the build machine's AVX-512";
    else if (arch == "x86-64-v4") EXPECT_EQ(built, kV4);
    else EXPECT_EQ(arch, "native") << "MOE_ARCH is one of the five CMake accepts";
    // This test runs, so the check let it: what the build needs, the CPU has.
    EXPECT_EQ(built & ~supported_features(), 0u);
}

// The check reads cpuid itself (clang's __builtin_cpu_supports lacks some names); it must agree
// with libgcc's reading, extension by extension, and with the kernels' own detection.
TEST(CpuBaseline, CpuidAgreesWithLibgcc) {
    const unsigned long long have = supported_features();
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
#define MOE_EXPECT_FEATURE(bit, name) \
    EXPECT_EQ((have >> bit & 1) != 0, __builtin_cpu_supports(name) != 0) << name
    MOE_EXPECT_FEATURE(kSse3, "sse3");
    MOE_EXPECT_FEATURE(kSsse3, "ssse3");
    MOE_EXPECT_FEATURE(kSse41, "sse4.1");
    MOE_EXPECT_FEATURE(kSse42, "sse4.2");
    MOE_EXPECT_FEATURE(kPopcnt, "popcnt");
    MOE_EXPECT_FEATURE(kAvx, "avx");
    MOE_EXPECT_FEATURE(kAvx2, "avx2");
    MOE_EXPECT_FEATURE(kFma, "fma");
    MOE_EXPECT_FEATURE(kBmi, "bmi");
    MOE_EXPECT_FEATURE(kBmi2, "bmi2");
    MOE_EXPECT_FEATURE(kF16c, "f16c");
    MOE_EXPECT_FEATURE(kLzcnt, "lzcnt");
    MOE_EXPECT_FEATURE(kMovbe, "movbe");
    MOE_EXPECT_FEATURE(kAvx512F, "avx512f");
    MOE_EXPECT_FEATURE(kAvx512Bw, "avx512bw");
    MOE_EXPECT_FEATURE(kAvx512Vl, "avx512vl");
    MOE_EXPECT_FEATURE(kAvx512Dq, "avx512dq");
    MOE_EXPECT_FEATURE(kAvx512Cd, "avx512cd");
    MOE_EXPECT_FEATURE(kAvx512Vnni, "avx512vnni");
    MOE_EXPECT_FEATURE(kAvx512Bf16, "avx512bf16");
    MOE_EXPECT_FEATURE(kAvx512Vbmi, "avx512vbmi");
    MOE_EXPECT_FEATURE(kAvx512Vbmi2, "avx512vbmi2");
    MOE_EXPECT_FEATURE(kAvx512Ifma, "avx512ifma");
    MOE_EXPECT_FEATURE(kAvx512Bitalg, "avx512bitalg");
    MOE_EXPECT_FEATURE(kAvx512Vpopcntdq, "avx512vpopcntdq");
    MOE_EXPECT_FEATURE(kAvx512Fp16, "avx512fp16");
    MOE_EXPECT_FEATURE(kGfni, "gfni");
    MOE_EXPECT_FEATURE(kVpclmulqdq, "vpclmulqdq");
    MOE_EXPECT_FEATURE(kAes, "aes");
    MOE_EXPECT_FEATURE(kPclmul, "pclmul");
    MOE_EXPECT_FEATURE(kSse4a, "sse4a");
#undef MOE_EXPECT_FEATURE
#endif
    const bool avx2 = (have & bits({kAvx2, kFma})) == bits({kAvx2, kFma});
    EXPECT_EQ(avx2, isa_supported(Isa::Avx2));
    EXPECT_EQ((have >> kAvx512Bf16 & 1) != 0, cpu_features().avx512bf16);
}

struct CmdResult {
    int rc = -1;      // exit status, or 128 + signal
    std::string out;  // stdout and stderr
};

CmdResult run(const std::string& cmd) {
    const fs::path out = fs::temp_directory_path() / ("moelab_cpu_baseline_" + std::to_string(::getpid()) + ".txt");
    const int status = std::system((cmd + " > '" + out.string() + "' 2>&1").c_str());
    CmdResult r;
    // qemu re-raises the guest's fatal signal on itself, so SIGILL in the guest is SIGILL here.
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    std::ifstream f(out, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    r.out = ss.str();
    fs::remove(out);
    return r;
}

// The lines of `demo` that are its results (qemu's own "warning: TCG doesn't support" lines
// and the kernels line differ by design).
std::string results(const std::string& out) {
    std::stringstream in(out), keep;
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("qemu-x86_64:", 0) != 0 && line.find("kernels") == std::string::npos) keep << line << '\n';
    return keep.str();
}

const char* kQemu = "/usr/bin/qemu-x86_64";

// qemu's CPU models: Nehalem has SSE4.2 but no AVX (x86-64-v2); Haswell has all of x86-64-v3 and
// no AVX-512.
TEST(CpuBaseline, OnAnOlderCpuTheCliRunsOrSaysWhatIsMissing) {
    if (!fs::exists(kQemu)) GTEST_SKIP() << kQemu << " is missing: scripts/install-deps.sh installs qemu-user";
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "moelab-cli is built with AddressSanitizer here, whose shadow memory qemu's user mode cannot map "
                    "(it is killed); the release suite runs this test";
#endif
    const std::string cli = std::string(MOE_BINARY_DIR) + "/cli/moelab-cli";
    const unsigned long long built = built_for_features();
    const std::string demo = " " + cli + " demo";

    // An older CPU that has everything the build needs: it runs, on the kernels that CPU has, and
    // gives what the same kernels give on this machine.
    if ((built & ~kV3) == 0 && isa_supported(Isa::Avx2)) {
        const CmdResult old = run(std::string(kQemu) + " -cpu Haswell" + demo);
        ASSERT_EQ(old.rc, 0) << old.out;
        const CmdResult here = run("MOE_ISA=avx2" + demo);
        ASSERT_EQ(here.rc, 0) << here.out;
        EXPECT_EQ(results(old.out), results(here.out));
        EXPECT_GT(results(here.out).size(), 200u) << here.out;
    } else {
        std::printf("MOE_ARCH=%s needs more than x86-64-v3 (%s): no older CPU model can run this build\n",
                    built_for_arch(), names(built & ~kV3).c_str());
    }

    // A CPU that lacks some of it: exit 2 and the line naming what is missing, never SIGILL.
    if ((built & ~kV2) != 0) {
        const CmdResult old = run(std::string(kQemu) + " -cpu Nehalem" + demo);
        EXPECT_EQ(old.rc, 2) << "128 + 4 is an illegal instruction: " << old.out;
        const std::string want = "moelab-cli: this build's code is compiled for MOE_ARCH=" + std::string(built_for_arch()) +
                                 " and this CPU lacks " + names(built & ~kV2) + ".";
        EXPECT_NE(old.out.find(want), std::string::npos) << "want: " << want << "\ngot: " << old.out;
    } else {
        // A plain x86-64 or v2 build runs even on the oldest model (SSE2 only; portable kernels).
        const CmdResult old = run(std::string(kQemu) + " -cpu " + (built == 0 ? "qemu64" : "Nehalem") + demo);
        ASSERT_EQ(old.rc, 0) << old.out;
        const CmdResult here = run("MOE_ISA=portable" + demo);
        EXPECT_EQ(results(old.out), results(here.out));
    }
}

}  // namespace
}  // namespace moe
