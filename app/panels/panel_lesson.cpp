// Lesson panel: pick a lesson from scenarios/, step through it with Next/Previous (or
// PageDown/PageUp), the narrative large with **bold** and `code` marked. Each step's knobs go to
// view.knobs (main.cpp pushes them to the session), "point at" moves the cursor and names the
// panel to look at. A malformed lesson shows its error (file, line, field); nothing else changes.
//
// [SECTION] State
// [SECTION] Applying a step
// [SECTION] Narrative
// [SECTION] Panel
#include <GLFW/glfw3.h>
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cfloat>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/layout_dump.h"
#include "app/panels/viz_common.h"
#include "app/panels_lab.h"
#include "app/theme.h"
#include "core/error.h"
#include "core/models/lm.h"
#include "core/teach/lesson.h"

namespace moe::app {

namespace {

// [SECTION] State
struct LessonUi {
    bool scanned = false;
    std::vector<std::string> files;   // (n_lessons) paths
    std::vector<std::string> titles;  // (n_lessons) shown in the picker
    int selected = -1;
    std::optional<Lesson> lesson;
    int step = 0;
    std::string error;                // the last load error, shown in the panel
    std::string model_path;           // the lesson's model_folder, resolved; "" = runs on any model
    bool use_builtin = false;         // the teacher chose the built-in model instead
    bool applied = true;              // the step's knobs went to the lesson's model
};

LessonUi& ui() {
    static LessonUi s;
    return s;
}

std::string file_name(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

void scan(LessonUi& s) {
    s.scanned = true;
    s.files.clear();
    s.titles.clear();
    try {
        s.files = list_lessons();
    } catch (const Error& e) {
        s.error = e.what();
        return;
    }
    for (const std::string& f : s.files) {
        try {
            s.titles.push_back(load_lesson(f).title);
        } catch (const Error&) {
            s.titles.push_back(file_name(f) + " (has an error: pick it to see)");
        }
    }
}

// [SECTION] Applying a step
const char* panel_label(LessonPanel p) {
    switch (p) {
        case LessonPanel::Router: return "Router view";
        case LessonPanel::Load: return "Expert load";
        case LessonPanel::Heatmap: return "Gate heatmap";
        case LessonPanel::Tokens: return "Tokens";
        case LessonPanel::Counters: return "Parameters and FLOPs";
        case LessonPanel::Prediction: return "Next byte";
        case LessonPanel::Training: return "Training lab";
        case LessonPanel::Systems: return "Systems";
    }
    return "?";
}

// The label of the panel in the app's table (panels.cpp), to outline it.
const char* table_label(LessonPanel p) {
    return p == LessonPanel::Router ? "Router" : panel_label(p);
}

// The knobs of step k are the lesson's start knobs plus every step's changes up to k, so
// Previous gives exactly what the step showed the first time.
void apply_step(const Lesson& lesson, int k, PanelContext& ctx) {
    if (lesson.model != LessonModel::Builtin) return;  // the lab and systems panels show these
    ViewState& v = ctx.view;
    const SessionKnobs defaults = ctx.session.default_knobs();
    RouterConfig router = defaults.router;
    LessonView lv;
    lv.shared_experts = defaults.shared_experts;
    apply_knobs(lesson.knobs, router);
    apply_knobs(lesson.knobs, lv);
    std::string text = lesson.text;
    for (int i = 0; i <= k && i < static_cast<int>(lesson.steps.size()); ++i) {
        const LessonStep& st = lesson.steps[static_cast<size_t>(i)];
        apply_knobs(st.knobs, router);
        apply_knobs(st.knobs, lv);
        if (st.text) text = *st.text;
    }
    router.n_experts = defaults.router.n_experts;  // the model's, not a lesson knob
    v.knobs.router = router;
    v.knobs.shared_experts = lv.shared_experts;
    v.layer = lv.layer;
    v.cursor = lv.token;
    v.cumulative_load = lv.cumulative;
    if (!text.empty()) v.text_input = text;
    const LessonStep& st = lesson.steps[static_cast<size_t>(k)];
    if (st.point_at && st.point_at->token >= 0) v.cursor = st.point_at->token;
    v.look_at_panel = st.point_at ? table_label(st.point_at->panel) : "";
    v.look_at_token = st.point_at ? st.point_at->token : -1;
    v.look_at_expert = st.point_at ? st.point_at->expert : -1;
    v.playing = false;
    v.anim_t = 0.0f;
}

// [SECTION] The lesson's model
bool session_runs(const PanelContext& ctx, const std::string& path) {
    std::error_code ec;
    return ctx.session.model_path() == path || std::filesystem::equivalent(ctx.session.model_path(), path, ec);
}

// A lesson that names a model folder asks main.cpp to load it (off the UI thread); its steps
// apply once that model runs. A folder that is not there is said at once.
void request_lesson_model(LessonUi& s, PanelContext& ctx) {
    s.model_path = lesson_model_path(*s.lesson);
    s.use_builtin = false;
    s.applied = true;
    ctx.view.lesson_model_error.clear();
    if (s.model_path.empty() || session_runs(ctx, s.model_path)) return;
    s.applied = false;
    std::error_code ec;
    if (!std::filesystem::exists(s.model_path, ec)) {
        ctx.view.lesson_model_error = "the folder does not exist";
        return;
    }
    ctx.view.lesson_model_load = s.model_path;
}

// Until the lesson's model runs: "loading", or why it did not load with a button to run the
// lesson on the built-in model. True when the lesson can be shown.
bool lesson_model_ready(LessonUi& s, PanelContext& ctx) {
    if (s.model_path.empty()) return true;
    const std::string want = s.use_builtin ? builtin_model_path() : s.model_path;
    if (session_runs(ctx, want)) {
        if (!s.applied) apply_step(*s.lesson, s.step, ctx);
        s.applied = true;
        return true;
    }
    const std::string& error = ctx.view.lesson_model_error;
    if (s.use_builtin || error.empty()) {
        ImGui::TextWrapped("Loading the lesson's model: %s", s.use_builtin ? "the built-in model" : s.model_path.c_str());
        report_drawn("lesson model loading %s", want.c_str());
        return false;
    }
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.35f, 1.0f));
    ImGui::TextWrapped("This lesson runs on %s, which could not be opened: %s", s.model_path.c_str(), error.c_str());
    ImGui::PopStyleColor();
    report_drawn("lesson model missing %s", s.model_path.c_str());
    if (ImGui::Button("Use the built-in model")) {
        s.use_builtin = true;
        s.applied = false;
        ctx.view.lesson_model_error.clear();
        if (!session_runs(ctx, builtin_model_path())) ctx.view.open_model_path = "builtin";
    }
    dump::item("lesson use builtin");
    teach_hover("Runs this lesson's steps on the built-in byte-level model instead.");
    return false;
}

// Loads a lesson and applies its first step; the error (file, line, field) is kept for the panel.
void open_path(LessonUi& s, const std::string& path, PanelContext& ctx) {
    s.error.clear();
    s.lesson.reset();
    ctx.view.look_at_panel.clear();
    try {
        s.lesson = load_lesson(path);
        s.step = 0;
        request_lesson_model(s, ctx);
        if (s.applied) apply_step(*s.lesson, 0, ctx);
    } catch (const Error& e) {
        s.lesson.reset();
        s.error = e.what();
    }
}

void open_lesson(LessonUi& s, int index, PanelContext& ctx) {
    s.selected = index;
    open_path(s, s.files[static_cast<size_t>(index)], ctx);
}

// [SECTION] Narrative
// Word-wrapped text in the large font; **bold** in the accent colour, `code` in the mono colour.
void draw_narrative(const std::string& md) {
    ImFont* font = font_large();
    ImGui::PushFont(font);
    const float space_w = ImGui::CalcTextSize(" ").x;
    const ImVec4 normal = ImGui::GetStyleColorVec4(ImGuiCol_Text);
    const ImVec4 bold(1.0f, 0.82f, 0.35f, 1.0f);
    const ImVec4 code(0.55f, 0.85f, 1.0f, 1.0f);
    bool in_bold = false, in_code = false;
    size_t i = 0;
    bool line_start = true;
    bool space_before = false;  // a space separated this word from the last one (else a style change did)
    float x_used = 0;
    const float width = ImGui::GetContentRegionAvail().x;
    while (i < md.size()) {
        // A blank line is a new paragraph.
        if (md[i] == '\n') {
            space_before = true;
            const bool paragraph = i + 1 < md.size() && md[i + 1] == '\n';
            i += paragraph ? 2 : 1;
            if (paragraph) {
                if (!line_start) ImGui::NewLine();
                ImGui::Spacing();
                line_start = true;
                x_used = 0;
            }
            continue;
        }
        if (md[i] == ' ') {
            space_before = true;
            ++i;
            continue;
        }
        // One word: up to a space or newline; markers toggle styles inside it.
        std::string word;
        ImVec4 color = in_code ? code : in_bold ? bold : normal;
        bool color_set = false;
        while (i < md.size() && md[i] != ' ' && md[i] != '\n') {
            if (md.compare(i, 2, "**") == 0) {
                if (!word.empty()) break;  // the style changes mid-word: draw what we have first
                in_bold = !in_bold;
                i += 2;
                continue;
            }
            if (md[i] == '`') {
                if (!word.empty()) break;
                in_code = !in_code;
                ++i;
                continue;
            }
            if (!color_set) {
                color = in_code ? code : in_bold ? bold : normal;
                color_set = true;
            }
            word += md[i++];
        }
        if (word.empty()) continue;
        const float w = ImGui::CalcTextSize(word.c_str()).x;
        const bool glued = !space_before;
        if (!line_start) {
            if (x_used + space_w + w > width) {
                x_used = 0;
            } else {
                ImGui::SameLine(0.0f, glued ? 0.0f : space_w);
                x_used += glued ? 0.0f : space_w;
            }
        }
        ImGui::TextColored(color, "%s", word.c_str());
        x_used += w;
        line_start = false;
        space_before = false;
    }
    ImGui::PopFont();
}

}  // namespace

std::string open_lesson_file(const std::string& path, PanelContext& ctx) {
    LessonUi& s = ui();
    if (!s.scanned) scan(s);
    s.selected = -1;
    std::error_code ec;
    for (size_t i = 0; i < s.files.size(); ++i)
        if (std::filesystem::equivalent(s.files[i], path, ec)) s.selected = static_cast<int>(i);
    open_path(s, path, ctx);
    if (s.error.empty()) ctx.view.want_lesson_panel = true;
    return s.error;
}

std::string lesson_state() {
    const LessonUi& s = ui();
    if (!s.lesson) return "none";
    return file_name(s.lesson->path) + ":" + std::to_string(s.step + 1) + "/" + std::to_string(s.lesson->steps.size());
}

const std::vector<std::string>& lesson_titles(std::vector<std::string>* files) {
    LessonUi& s = ui();
    if (!s.scanned) scan(s);
    if (files) *files = s.files;
    return s.titles;
}

// [SECTION] Panel
void draw_lesson(PanelContext& ctx) {
    LessonUi& s = ui();
    if (!s.scanned) scan(s);

    // A strip along the bottom (a small window, layout.cpp): the buttons on one row, the step's
    // title beside its narrative instead of above it.
    const ImVec2 room = ImGui::GetContentRegionAvail();
    const bool strip = room.x > 2.5f * room.y;
    const char* preview = s.selected >= 0 ? s.titles[static_cast<size_t>(s.selected)].c_str() : "Pick a lesson...";
    ImGui::SetNextItemWidth(strip ? std::floor(room.x * 0.34f)
                                  : std::max(120.0f, room.x - ImGui::CalcTextSize("Reload").x - teach_marker_width() - 40));
    if (ImGui::BeginCombo("##lesson", preview)) {
        for (int i = 0; i < static_cast<int>(s.titles.size()); ++i)
            if (ImGui::Selectable(s.titles[static_cast<size_t>(i)].c_str(), i == s.selected)) open_lesson(s, i, ctx);
        ImGui::EndCombo();
    }
    dump::item("lesson combo");
    ImGui::SameLine();
    if (ImGui::Button("Reload")) {
        const int keep = s.selected;
        scan(s);
        if (keep >= 0 && keep < static_cast<int>(s.files.size())) open_lesson(s, keep, ctx);
    }
    teach("Read the lesson files again (edit a JSON in scenarios/ and see it here).");

    if (!s.error.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.35f, 1.0f));
        ImGui::TextWrapped("This lesson cannot be used: %s", s.error.c_str());
        ImGui::PopStyleColor();
        return;
    }
    if (!s.lesson) {
        empty_message(s.files.empty() ? "No lessons found in scenarios/." : "Pick a lesson above to start.");
        return;
    }
    if (!lesson_model_ready(s, ctx)) return;
    const Lesson& lesson = *s.lesson;
    const int n = static_cast<int>(lesson.steps.size());
    s.step = std::clamp(s.step, 0, n - 1);

    bool prev = false, next = false;
    if (strip) ImGui::SameLine(0.0f, ImGui::GetFontSize() * 2.0f);
    ImGui::BeginDisabled(s.step == 0);
    prev = ImGui::Button("< Previous");
    dump::item("lesson previous");
    ImGui::EndDisabled();
    ImGui::SameLine();
    ImGui::Text("Step %d of %d", s.step + 1, n);
    ImGui::SameLine();
    const bool last = s.step + 1 >= n;
    const bool has_next_lesson = s.selected >= 0 && s.selected + 1 < static_cast<int>(s.files.size());
    if (!last) {
        next = ImGui::Button("Next >");
        dump::item("lesson next");
    } else if (has_next_lesson) {
        if (ImGui::Button("Next lesson >")) {
            open_lesson(s, s.selected + 1, ctx);
            return;
        }
        dump::item("lesson next");
        teach_hover(s.titles[static_cast<size_t>(s.selected + 1)].c_str());
    } else {
        ImGui::TextDisabled("(the last lesson)");
    }
    teach("PageDown / PageUp step through the lesson too.");
    if (!ImGui::GetIO().WantTextInput) {
        if (ImGui::IsKeyPressed(GLFW_KEY_PAGE_DOWN, false)) next = s.step + 1 < n;
        if (ImGui::IsKeyPressed(GLFW_KEY_PAGE_UP, false)) prev = s.step > 0;
    }
    if (next || prev) {
        s.step += next ? 1 : -1;
        apply_step(lesson, s.step, ctx);
    }

    const LessonStep& st = lesson.steps[static_cast<size_t>(s.step)];
    ImGui::Separator();
    if (strip) ImGui::BeginChild("##step head", ImVec2(std::floor(room.x * 0.34f), 0), false);
    ImGui::PushFont(font_large());
    ImGui::TextWrapped("%s", st.title.c_str());
    ImGui::PopFont();
    if (st.point_at) {
        std::string look = std::string("Look at: ") + panel_label(st.point_at->panel);
        if (st.point_at->expert >= 0) look += ", expert E" + std::to_string(st.point_at->expert);
        if (st.point_at->token >= 0) look += ", token " + std::to_string(st.point_at->token);
        ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(0.35f, 0.9f, 0.55f, 1.0f));
        ImGui::TextWrapped("%s (outlined in green)", look.c_str());
        ImGui::PopStyleColor();
    }
    if (lesson.model != LessonModel::Builtin)
        ImGui::TextWrapped("This lesson drives the %s model: run it with `moelab-cli lesson %s` for its numbers.",
                            lesson_model_name(lesson.model), file_name(lesson.path).c_str());
    if (strip) {
        ImGui::EndChild();
        ImGui::SameLine();
    }
    // The narrative wraps (draw_narrative) and scrolls inside the lesson column.
    ImGui::BeginChild("##narrative", ImVec2(0, 0), false);
    draw_narrative(st.narrative);
    ImGui::EndChild();
}

}  // namespace moe::app
