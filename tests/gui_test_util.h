// Shared by the tests that drive the built app (test_app_gui.cpp, test_views.cpp): run
// `moelab --screenshot` under a private Xvfb when there is no DISPLAY, decode the PNG, read the panel
// rectangles and the "drawn ..." lines the panels report, and compare regions of pictures.
// Each test executable includes this once (stb_image is compiled static into it).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_PNG
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace moe_gui_test {

namespace fs = std::filesystem;

struct Rect {
    int x = 0, y = 0, w = 0, h = 0;
};

struct RunResult {
    int exit_code = -1;
    std::string out;                    // stdout
    std::string err;                    // stderr
    std::map<std::string, Rect> panels; // parsed from the "panel "Label" x y w h" lines
    std::vector<std::string> drawn;     // the "drawn ..." lines, without the prefix
};

struct Image {
    int w = 0, h = 0;
    std::vector<unsigned char> rgb;     // (h, w, 3)
    const unsigned char* at(int x, int y) const { return &rgb[(static_cast<size_t>(y) * w + x) * 3]; }
};

inline std::string app_path() { return std::string(MOE_BINARY_DIR) + "/app/moelab"; }

inline bool on_path(const char* tool) {
    const std::string cmd = std::string("command -v ") + tool + " > /dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

inline std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// A private X server for one test: Xvfb picks a free display (-displayfd) and is stopped by the
// destructor. Not xvfb-run: its clean-up exits 5 when it races another GUI test's, and that exit
// code replaced the app's (AppGui.BadArgumentsExitTwoWithAMessage failed under load).
class PrivateXvfb {
public:
    // Returns the display (":N"), or "" when Xvfb is missing or did not start within 5 s.
    std::string start(const fs::path& dir) {
        if (!on_path("Xvfb")) return {};
        const fs::path display = dir / "xvfb.display", pid = dir / "xvfb.pid";
        const std::string cmd = "Xvfb -displayfd 3 -screen 0 1920x1080x24 -nolisten tcp 3> " + quote(display.string()) +
                                " 2> /dev/null & echo $! > " + quote(pid.string());
        if (std::system(cmd.c_str()) != 0) return {};
        for (int i = 0; i < 200 && slurp(display).empty(); ++i) ::usleep(25000);
        pid_ = std::atoi(slurp(pid).c_str());
        const std::string n = slurp(display);
        return n.empty() ? std::string() : ":" + n.substr(0, n.find('\n'));
    }
    ~PrivateXvfb() {
        if (pid_ > 0) ::kill(pid_, SIGTERM);
    }

private:
    int pid_ = 0;
};

class GuiTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(app_path())) GTEST_SKIP() << "moelab was not built (MOE_BUILD_APP=OFF): " << app_path();
        dir_ = fs::temp_directory_path() / (std::string(::testing::UnitTest::GetInstance()->current_test_suite()->name()) + "_" + std::to_string(::getpid()));
        fs::create_directories(dir_);
        // The user's DISPLAY, else one Xvfb for all of this test's app runs.
        const char* display = std::getenv("DISPLAY");
        if (display && *display) {
            prefix_ = " ";
            return;
        }
        const std::string own = xvfb_.start(dir_);
        if (own.empty()) GTEST_SKIP() << "no DISPLAY and no Xvfb that starts: the GUI cannot be started here";
        prefix_ = "env DISPLAY=" + own + " ";
    }
    void TearDown() override {
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }

    // Runs moelab with args (already quoted) and a fresh HOME so no user settings can leak in.
    // direct: no X server needed (argument errors are reported before any window opens).
    RunResult run(const std::string& args, bool direct = false, const std::string& env = {}) {
        RunResult r;
        const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
        const std::string cmd = "HOME=" + quote(dir_.string()) + " XDG_CONFIG_HOME=" + quote((dir_ / "cfg").string()) + " " + env +
                                " timeout 120 " + (direct ? std::string(" ") : prefix_) + quote(app_path()) + " " + args + " > " +
                                quote(out.string()) + " 2> " + quote(err.string());
        const int status = std::system(cmd.c_str());
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.out = slurp(out);
        r.err = slurp(err);
        std::istringstream lines(r.out);
        std::string line;
        while (std::getline(lines, line)) {
            if (line.rfind("drawn ", 0) == 0) r.drawn.push_back(line.substr(6));
            if (line.rfind("panel \"", 0) != 0) continue;
            const size_t end = line.find('"', 7);
            if (end == std::string::npos) continue;
            Rect rect;
            std::istringstream nums(line.substr(end + 1));
            nums >> rect.x >> rect.y >> rect.w >> rect.h;
            r.panels[line.substr(7, end - 7)] = rect;
        }
        return r;
    }

    // env: extra "NAME=value " assignments before the command (already quoted).
    Image screenshot(const std::string& name, const std::string& args, RunResult* result = nullptr,
                     const std::string& env = {}) {
        const fs::path png = dir_ / name;
        RunResult r = run("--screenshot " + quote(png.string()) + " --frames 3 " + args, false, env);
        EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
        Image img;
        int channels = 0;
        unsigned char* data = stbi_load(png.string().c_str(), &img.w, &img.h, &channels, 3);
        EXPECT_NE(data, nullptr) << "PNG did not decode: " << png;
        if (data) {
            img.rgb.assign(data, data + static_cast<size_t>(img.w) * img.h * 3);
            stbi_image_free(data);
        }
        if (result) *result = std::move(r);
        return img;
    }

    std::string prefix_;
    fs::path dir_;
    PrivateXvfb xvfb_;
};

// Mean absolute difference per channel over a rectangle, 0..255.
inline double region_diff(const Image& a, const Image& b, const Rect& r) {
    if (a.w != b.w || a.h != b.h || r.w <= 0 || r.h <= 0) return -1;
    double sum = 0;
    for (int y = r.y; y < r.y + r.h && y < a.h; ++y)
        for (int x = r.x; x < r.x + r.w && x < a.w; ++x)
            for (int c = 0; c < 3; ++c) sum += std::abs(int(a.at(x, y)[c]) - int(b.at(x, y)[c]));
    return sum / (3.0 * r.w * r.h);
}

// Standard deviation of the brightness in a rectangle: 0 means an empty, flat panel.
inline double region_stddev(const Image& img, const Rect& r) {
    double s = 0, s2 = 0;
    int n = 0;
    for (int y = r.y; y < r.y + r.h && y < img.h; ++y)
        for (int x = r.x; x < r.x + r.w && x < img.w; ++x) {
            const unsigned char* p = img.at(x, y);
            const double v = (p[0] + p[1] + p[2]) / 3.0;
            s += v;
            s2 += v * v;
            ++n;
        }
    if (n == 0) return 0;
    const double mean = s / n;
    return std::sqrt(std::max(0.0, s2 / n - mean * mean));
}

}  // namespace moe_gui_test
