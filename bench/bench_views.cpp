// Frame time of the app's main window at real-model sizes, on whatever GL the machine has
// (Mesa llvmpipe under Xvfb in CI and on a laptop without a GPU driver; the GPU where there is
// one). Each case runs the built `moelab --screenshot --timing` (the real window, every panel,
// the real engine) and reads its "frame build" mean over 20 frames, which includes glFinish.
//
// Views/frame/<case>        manual time = the app's mean frame time
//   builtin                 the shipped model (8 experts, 4 layers) on its default text: the baseline
//   N256_L64_T1000          a random model (--random-model) of 256 experts, 64 layers, K = 8, on a
//                           1,000-token text: DeepSeek-V3's expert count at a real depth
//   N256_L64_T1000_overview the same with the whole-model overview open (two more texture maps)
//
// Counters: frame_ms, vs_builtin (this case / the baseline, measured in the same run), budget
// (frame_ms / 16.7 ms: under 1 keeps 60 Hz), cpu_ms (the process's CPU time per frame, software
// GL's raster threads included: on a shared, loaded machine it moves less than wall time) and
// cpu_vs_builtin. Needs the app built and an X server (xvfb-run);
// skips with a message otherwise.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

std::string app_path() { return std::string(MOE_BINARY_DIR) + "/app/moelab"; }

std::string display_prefix() {
    const char* d = std::getenv("DISPLAY");
    if (d != nullptr && *d != '\0') return {};
    return "xvfb-run -a -s '-screen 0 1920x1080x24' ";
}

std::string thousand_token_text() {
    std::string t;
    const std::string sample = "The cat sat on the mat. Le chat est sur le tapis. for (int i = 0; i < 10; ++i) x += i; ";
    while (t.size() < 1000) t += sample;
    return t.substr(0, 1000);
}

struct FrameTime {
    double wall_ms = -1, cpu_ms = -1;
};

// Runs the app; returns its mean frame time in ms, or wall_ms < 0 with *why set.
FrameTime frame_ms(const std::string& args, std::string* why) {
    if (!fs::exists(app_path())) {
        *why = "moelab was not built: " + app_path();
        return {};
    }
    const fs::path dir = fs::temp_directory_path() / ("moelab_bench_views_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const fs::path out = dir / "out.txt";
    const std::string cmd = "HOME=" + dir.string() + " XDG_CONFIG_HOME=" + dir.string() + " timeout 600 " +
                            display_prefix() + app_path() + " --screenshot " + (dir / "shot.png").string() +
                            " --frames 1 --timing --size 1920x1080 " + args + " > " + out.string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    fs::remove_all(dir);
    const size_t at = text.find("frame build ");
    FrameTime ft;
    int n_frames = 0;
    if (rc != 0 || at == std::string::npos ||
        std::sscanf(text.c_str() + at, "frame build %lf ms (mean of %d), frame cpu %lf", &ft.wall_ms, &n_frames,
                    &ft.cpu_ms) != 3) {
        *why = "moelab --timing failed (no X server? install xvfb): " + text.substr(0, 300);
        return {};
    }
    return ft;
}

FrameTime& baseline() {
    static FrameTime ft;
    return ft;
}

void frame(benchmark::State& state, const std::string& args, bool is_baseline) {
    std::string why;
    for (auto _ : state) {
        const FrameTime ft = frame_ms(args, &why);
        if (ft.wall_ms < 0) {
            state.SkipWithError(why.c_str());
            return;
        }
        state.SetIterationTime(ft.wall_ms / 1000.0);
        if (is_baseline) baseline() = ft;
        state.counters["frame_ms"] = ft.wall_ms;
        state.counters["budget"] = ft.wall_ms / (1000.0 / 60.0);
        state.counters["cpu_ms"] = ft.cpu_ms;
        if (baseline().wall_ms > 0) state.counters["vs_builtin"] = ft.wall_ms / baseline().wall_ms;
        if (baseline().cpu_ms > 0) state.counters["cpu_vs_builtin"] = ft.cpu_ms / baseline().cpu_ms;
    }
}

const std::string kBig = "--random-model experts=256,layers=64,k=8,seq=1024 --text '" + thousand_token_text() + "'";

void BM_builtin(benchmark::State& s) { frame(s, "", true); }
void BM_big(benchmark::State& s) { frame(s, kBig, false); }
void BM_big_overview(benchmark::State& s) {
    const fs::path settings = fs::temp_directory_path() / "moelab_bench_views_overview.json";
    std::ofstream(settings) << R"({"panels": {"Model overview": true}})";
    frame(s, kBig + " --settings " + settings.string(), false);
}

}  // namespace

// Registered in this order so the baseline runs first; one process run each (seconds).
BENCHMARK(BM_builtin)->Name("Views/frame/builtin")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_big)->Name("Views/frame/N256_L64_T1000")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_big_overview)
    ->Name("Views/frame/N256_L64_T1000_overview")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
