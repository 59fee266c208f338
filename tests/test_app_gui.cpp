// The desktop app end to end: runs the built `moelab --screenshot` (under xvfb-run when there is
// no DISPLAY), decodes the PNG and checks that the picture reacts to the knobs the way it should.
// Skips with a message when the app was not built (MOE_BUILD_APP=OFF) or no X server can be had.
#include <gtest/gtest.h>
#include <sys/wait.h>

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
#define STBI_ONLY_PNG
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace {

namespace fs = std::filesystem;

struct Rect {
    int x = 0, y = 0, w = 0, h = 0;
};

struct RunResult {
    int exit_code = -1;
    std::string out;                    // stdout
    std::string err;                    // stderr
    std::map<std::string, Rect> panels; // parsed from the "panel "Label" x y w h" lines
};

struct Image {
    int w = 0, h = 0;
    std::vector<unsigned char> rgb;     // (h, w, 3)
    const unsigned char* at(int x, int y) const { return &rgb[(static_cast<size_t>(y) * w + x) * 3]; }
};

std::string app_path() { return std::string(MOE_BINARY_DIR) + "/app/moelab"; }

bool on_path(const char* tool) {
    const std::string cmd = std::string("command -v ") + tool + " > /dev/null 2>&1";
    return std::system(cmd.c_str()) == 0;
}

// How to reach an X server: the user's DISPLAY, else a throwaway Xvfb. Empty: skip.
std::string display_prefix(std::string* why_not) {
    const char* display = std::getenv("DISPLAY");
    if (display && *display) return " ";
    if (on_path("xvfb-run")) return "xvfb-run -a -s '-screen 0 1920x1080x24' ";
    *why_not = "no DISPLAY and no xvfb-run: the GUI cannot be started here";
    return {};
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

class AppGui : public ::testing::Test {
protected:
    void SetUp() override {
        if (!fs::exists(app_path())) GTEST_SKIP() << "moelab was not built (MOE_BUILD_APP=OFF): " << app_path();
        std::string why;
        prefix_ = display_prefix(&why);
        if (prefix_.empty()) GTEST_SKIP() << why;
        dir_ = fs::temp_directory_path() / ("moelab_test_app_gui_" + std::to_string(::getpid()));
        fs::create_directories(dir_);
    }
    void TearDown() override {
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }

    // Runs moelab with args (already quoted) and a fresh HOME so no user settings can leak in.
    // direct: no X server needed (argument errors are reported before any window opens).
    RunResult run(const std::string& args, bool direct = false) {
        RunResult r;
        const fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
        const std::string cmd = "HOME=" + quote(dir_.string()) + " XDG_CONFIG_HOME=" + quote((dir_ / "cfg").string()) +
                                " timeout 120 " + (direct ? std::string(" ") : prefix_) + quote(app_path()) + " " + args + " > " +
                                quote(out.string()) + " 2> " + quote(err.string());
        const int status = std::system(cmd.c_str());
        r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        r.out = slurp(out);
        r.err = slurp(err);
        std::istringstream lines(r.out);
        std::string line;
        while (std::getline(lines, line)) {
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

    Image screenshot(const std::string& name, const std::string& args, RunResult* result = nullptr) {
        const fs::path png = dir_ / name;
        RunResult r = run("--screenshot " + quote(png.string()) + " --frames 3 " + args);
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
};

// Mean absolute difference per channel over a rectangle, 0..255.
double region_diff(const Image& a, const Image& b, const Rect& r) {
    if (a.w != b.w || a.h != b.h || r.w <= 0 || r.h <= 0) return -1;
    double sum = 0;
    for (int y = r.y; y < r.y + r.h && y < a.h; ++y)
        for (int x = r.x; x < r.x + r.w && x < a.w; ++x)
            for (int c = 0; c < 3; ++c) sum += std::abs(int(a.at(x, y)[c]) - int(b.at(x, y)[c]));
    return sum / (3.0 * r.w * r.h);
}

// Standard deviation of the brightness in a rectangle: 0 means an empty, flat panel.
double region_stddev(const Image& img, const Rect& r) {
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

const char* const kAllPanels[] = {"Controls", "Text", "Tokens", "Router", "Expert load",
                                  "Next byte", "Gate heatmap", "Parameters and FLOPs"};

void expect_grid(const RunResult& r, int width, int height) {
    std::vector<std::pair<std::string, Rect>> shown(r.panels.begin(), r.panels.end());
    for (const auto& [label, rect] : shown) {
        EXPECT_GE(rect.x, 0) << label;
        EXPECT_GE(rect.y, 0) << label;
        EXPECT_LE(rect.x + rect.w, width) << label << " is cut off on the right";
        EXPECT_LE(rect.y + rect.h, height) << label << " is cut off at the bottom";
        EXPECT_GE(rect.w, 120) << label << " is too narrow to read";
        EXPECT_GE(rect.h, 60) << label << " is too short to read";
    }
    for (size_t i = 0; i < shown.size(); ++i)
        for (size_t j = i + 1; j < shown.size(); ++j) {
            const Rect& a = shown[i].second;
            const Rect& b = shown[j].second;
            const bool overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
            EXPECT_FALSE(overlap) << shown[i].first << " overlaps " << shown[j].first;
        }
}

TEST_F(AppGui, DrawsEveryPanelAt720pAndTheKnobsChangeThePicture) {
    RunResult r;
    const Image k1 = screenshot("k1.png", "--k 1 --size 1280x720 --token 5", &r);
    ASSERT_EQ(k1.w, 1280);
    ASSERT_EQ(k1.h, 720);
    for (const char* label : kAllPanels) {
        ASSERT_TRUE(r.panels.count(label)) << "panel not drawn: " << label << "\n" << r.out;
        EXPECT_GT(region_stddev(k1, r.panels[label]), 2.0) << label << " looks empty";
    }
    expect_grid(r, 1280, 720);
    EXPECT_FALSE(fs::exists(dir_ / "cfg" / "moelab")) << "screenshots must not touch the user's settings";

    // K = 4 draws more arcs and more chosen cells: the router view must change visibly.
    const Image k4 = screenshot("k4.png", "--k 4 --size 1280x720 --token 5");
    const Rect router = r.panels["Router"];
    const double dk = region_diff(k1, k4, router);
    EXPECT_GT(dk, 0.5) << "the router view did not change between K=1 and K=4";
    // ... while the text box, which K does not touch, stays put.
    EXPECT_LT(region_diff(k1, k4, r.panels["Text"]), dk);

    // Another scheme routes differently: the router view and the heatmap change.
    const Image hash = screenshot("hash.png", "--k 1 --scheme hash --size 1280x720 --token 5");
    EXPECT_GT(region_diff(k1, hash, router), 0.5) << "the router view did not change between schemes";
    EXPECT_GT(region_diff(k1, hash, r.panels["Gate heatmap"]), 0.1);
}

TEST_F(AppGui, PresenterAt1080pFitsWithoutControls) {
    RunResult r;
    const Image img = screenshot("presenter.png", "--presenter --size 1920x1080", &r);
    ASSERT_EQ(img.w, 1920);
    ASSERT_EQ(img.h, 1080);
    EXPECT_EQ(r.panels.count("Controls"), 0u) << "presenter mode folds the controls away";
    EXPECT_EQ(r.panels.count("Router"), 1u);
    EXPECT_EQ(r.panels.count("Text"), 1u);
    expect_grid(r, 1920, 1080);
}

TEST_F(AppGui, SettingsFileIsAppliedAndACorruptOneIsOnlyAMessage) {
    const fs::path good = dir_ / "good.json";
    const std::string good_text = R"({"presenter": true, "panels": {"Next byte": false}, "knobs": {"k": 3}})";
    std::ofstream(good) << good_text;
    RunResult r;
    screenshot("settings.png", "--settings " + quote(good.string()), &r);
    EXPECT_EQ(r.panels.count("Controls"), 0u) << "presenter mode from the file folds the controls away";
    EXPECT_EQ(r.panels.count("Next byte"), 0u) << "the file hides this panel";
    EXPECT_EQ(r.panels.count("Router"), 1u);
    EXPECT_EQ(slurp(good), good_text) << "a screenshot must not write settings";

    const fs::path bad = dir_ / "bad.json";
    std::ofstream(bad) << "{\"presenter\": tru";
    RunResult c;
    screenshot("corrupt.png", "--settings " + quote(bad.string()), &c);
    EXPECT_EQ(c.exit_code, 0);
    EXPECT_NE(c.err.find("settings ignored"), std::string::npos) << c.err;
    EXPECT_NE(c.err.find("bad.json"), std::string::npos) << c.err;
    EXPECT_EQ(c.panels.count("Controls"), 1u) << "defaults stay when the file is corrupt";

    const fs::path wrong = dir_ / "wrong.json";
    std::ofstream(wrong) << R"({"knobs": {"scheme": 99}})";
    RunResult w;
    screenshot("wrong.png", "--settings " + quote(wrong.string()), &w);
    EXPECT_NE(w.err.find("scheme"), std::string::npos) << w.err;
}

TEST_F(AppGui, BadArgumentsExitTwoWithAMessage) {
    const std::string png = quote((dir_ / "bad.png").string());
    const RunResult scheme = run("--screenshot " + png + " --scheme nonsense", true);
    EXPECT_EQ(scheme.exit_code, 2);
    EXPECT_NE(scheme.err.find("nonsense"), std::string::npos) << scheme.err;
    const RunResult k0 = run("--screenshot " + png + " --k 0", true);
    EXPECT_EQ(k0.exit_code, 2);
    EXPECT_NE(k0.err.find("--k"), std::string::npos) << k0.err;
    const RunResult size = run("--screenshot " + png + " --size huge", true);
    EXPECT_EQ(size.exit_code, 2);
    const RunResult unknown = run("--screenshot " + png + " --frobnicate", true);
    EXPECT_EQ(unknown.exit_code, 2);
    // K larger than the model's expert count is only known once the model is loaded.
    const RunResult k99 = run("--screenshot " + png + " --k 99 --frames 1");
    EXPECT_EQ(k99.exit_code, 2);
    EXPECT_NE(k99.err.find("99"), std::string::npos) << k99.err;
    EXPECT_FALSE(fs::exists(dir_ / "bad.png"));
}

}  // namespace
