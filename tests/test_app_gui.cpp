// The desktop app end to end: runs the built `moelab --screenshot` (under a private Xvfb when there is
// no DISPLAY), decodes the PNG and checks that the picture reacts to the knobs the way it should.
// Skips with a message when the app was not built (MOE_BUILD_APP=OFF) or no X server can be had.
#include "gui_test_util.h"

namespace {

using namespace moe_gui_test;

class AppGui : public GuiTest {};

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

// The rectangle of the first "drawn look_at WHAT INDEX x y w h" line, or w = -1 when there is none.
Rect look_at_mark(const RunResult& r, const std::string& what_and_index) {
    for (const std::string& line : r.drawn) {
        const std::string head = "look_at " + what_and_index + " ";
        if (line.rfind(head, 0) != 0) continue;
        double x = 0, y = 0, w = 0, h = 0;
        std::istringstream(line.substr(head.size())) >> x >> y >> w >> h;
        return Rect{int(x), int(y), int(w), int(h)};
    }
    return Rect{0, 0, -1, -1};
}

bool inside(const Rect& a, const Rect& panel) {
    return a.w >= 0 && a.x >= panel.x && a.y >= panel.y && a.x + a.w <= panel.x + panel.w && a.y + a.h <= panel.y + panel.h;
}

// A lesson step naming an expert and a token marks them inside the panels, not only the panel's
// outline: the router's box, the load bar and the token strip's token, and nothing else.
TEST_F(AppGui, LessonMarksTheExpertAndTokenItNames) {
    const fs::path lesson = dir_ / "look.json";
    std::ofstream(lesson) << R"({"title": "t", "summary": "s", "model": "builtin", "text": "Mixture of experts: each token picks K.",
        "knobs": {"k": 2}, "steps": [
          {"title": "one", "narrative": "n", "point_at": {"panel": "load", "token": 5, "expert": 3}}]})";
    RunResult r;
    screenshot("look.png", "--size 1280x720 --lesson " + quote(lesson.string()), &r);
    ASSERT_TRUE(r.panels.count("Router") && r.panels.count("Expert load") && r.panels.count("Tokens")) << r.out;
    EXPECT_TRUE(inside(look_at_mark(r, "router expert 3"), r.panels["Router"])) << r.out;
    EXPECT_TRUE(inside(look_at_mark(r, "load expert 3"), r.panels["Expert load"])) << r.out;
    EXPECT_TRUE(inside(look_at_mark(r, "token 5"), r.panels["Tokens"])) << r.out;
    EXPECT_LT(look_at_mark(r, "router expert 2").w, 0) << "only the expert the step names is marked";
    EXPECT_LT(look_at_mark(r, "token 4").w, 0) << "only the token the step names is marked";
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
