// Lessons as data (STYLE.md §8): a lesson is a JSON file in scenarios/ that sets the knobs of a
// model step by step and says what to look at; adding one needs no C++. docs/LESSONS.md
// describes the format field by field.
//
// Two layers, both headless:
//   parse_lesson / load_lesson   JSON -> Lesson. Every mistake (JSON syntax, unknown or mistyped
//                                field, out-of-range value) throws moe::Error naming the file,
//                                the line and the field path, e.g.
//                                "scenarios/03.json: line 14: steps[2].knobs.k: expected an
//                                integer in 1..64, got \"two\"".
//   LessonRunner                 runs a lesson with the real engine (the built-in MoE LM, the
//                                2D mixture trainer, the parameter counter) and reports each
//                                step's key numbers; optionally exports its plots.
// The app's lesson panel reads the same Lesson struct: it shows step.title / step.narrative,
// applies step.knobs to its own knobs (apply_knobs), and highlights step.point_at.
//
// [SECTION] Lesson description
// [SECTION] Parsing
// [SECTION] Running headless
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine/routing.h"

namespace moe {

// [SECTION] Lesson description

// Which model a lesson drives.
enum class LessonModel : int {
    Builtin = 0,  // "builtin": the tiny byte-level MoE language model shipped in assets/
    Mix2d,        // "mix2d": the 2D mixture-of-experts training lab (core/models/mix2d.h)
    Gallery,      // "gallery": famous models' configs, counted (core/teach/params.h)
    Systems,      // "systems": memory, batch size and expert-parallel traffic views
};
const char* lesson_model_name(LessonModel m);
std::optional<LessonModel> lesson_model_from_name(std::string_view name);

// The app panels a step can point at.
enum class LessonPanel : int { Router = 0, Load, Heatmap, Tokens, Counters, Prediction, Training, Systems };
const char* lesson_panel_name(LessonPanel p);
std::optional<LessonPanel> lesson_panel_from_name(std::string_view name);

// Knob changes: every field is optional, only what the lesson sets is present. The router knobs
// are RouterConfig's fields under their snake_case names; the view knobs belong to the app's view.
struct LessonKnobs {
    // RouterConfig
    std::optional<Scheme> scheme;           // "scheme": scheme_name(), e.g. "switch"
    std::optional<DropPolicy> drop_policy;  // "drop_policy": "dropless" | "position" | "score"
    std::optional<int> n_experts;           // mix2d only (the LM's expert count is fixed)
    std::optional<int> k;
    std::optional<float> capacity_factor;
    std::optional<bool> renormalize;
    std::optional<bool> add_noise;
    std::optional<float> noise_scale;
    std::optional<float> jitter_eps;
    std::optional<int> n_groups;
    std::optional<int> topk_groups;
    std::optional<float> routed_scaling;
    std::optional<int> sinkhorn_iters;
    std::optional<float> bias_update_rate;
    std::optional<uint64_t> seed;
    // View
    std::optional<int> layer;               // which MoE layer the router/heatmap/load views show
    std::optional<int> token;               // the cursor: current token index ("cursor" is accepted too)
    std::optional<bool> shared_experts;     // run the model's shared experts
    std::optional<bool> cumulative;         // load bars: cumulative since the lesson started

    bool empty() const;
};

// The view knobs with their defaults.
struct LessonView {
    int layer = 0;
    int token = 0;
    bool shared_experts = true;
    bool cumulative = false;
};

// Applies the knobs that are set; leaves the others as they are.
void apply_knobs(const LessonKnobs& knobs, RouterConfig& router);
void apply_knobs(const LessonKnobs& knobs, LessonView& view);

struct LessonPointer {
    LessonPanel panel = LessonPanel::Load;
    int expert = -1;  // -1 = none
    int token = -1;   // -1 = none
};

// mix2d: train for a while with a balancing recipe (core/models/mix2d.h).
struct LessonTrain {
    int train_steps = 0;              // 1..100000
    std::string balance = "none";     // "none" | "switch" | "bias" (mix2d_balance_name)
    std::optional<float> alpha;       // Switch loss weight when balance = "switch"
    std::optional<bool> z_loss;       // add the router z-loss
    bool reset = false;               // re-initialise the experts and router first
};

// systems: the numbers of MOE_REFERENCE §6 for one configuration. Like knobs, a step gives only
// the changes; the first step starts from the defaults below.
struct LessonSystems {
    std::optional<std::string> config;  // a gallery config (assets/configs/NAME.json); "builtin" = the built-in LM (default)
    std::optional<int64_t> tokens;      // T, tokens in the batch (default 4096)
    std::optional<int> devices;         // G, devices the experts are spread over (default 8)
    std::optional<std::string> dtype;   // bytes per value of weights and activations (default "bf16")
};

struct LessonStep {
    int line = 0;                     // line of the step in the file, for errors found while running
    std::string title;
    std::string narrative;            // Markdown-ish: **bold**, `code`, blank line = new paragraph
    LessonKnobs knobs;                // only the changes
    std::optional<std::string> text;  // builtin: new text to route from this step on
    std::optional<LessonPointer> point_at;
    std::optional<LessonTrain> train;        // mix2d only
    std::vector<std::string> gallery;        // gallery only: config names to show
    std::optional<LessonSystems> systems;    // systems only
};

struct Lesson {
    std::string path;                 // the file it came from (parse_lesson's `where`)
    std::string title;
    std::string summary;              // one or two sentences for the lesson list
    LessonModel model = LessonModel::Builtin;
    // builtin: "model_folder", the language model the lesson runs on instead of the built-in one:
    // a Hugging Face folder (or a moelab LM file), as written in the file ("~/" = $HOME, relative
    // = from the lesson file's folder). "" = the built-in model. lesson_model_path() resolves it.
    std::string model_folder;
    std::string text;                 // builtin: the text routed at the start
    LessonKnobs knobs;                // the initial knobs (on top of the model's defaults)
    std::vector<LessonStep> steps;    // 1..64
};

// [SECTION] Parsing
// Parses lesson JSON. `where` names the source in errors (usually the path). Throws moe::Error
// with where = "<where>: line N" and field = the path ("steps[2].knobs.k"); unknown fields get a
// "did you mean" hint, duplicate keys are errors. Never crashes on any bytes.
Lesson parse_lesson(std::string_view json_text, const std::string& where);
Lesson load_lesson(const std::string& path);

// The model a builtin lesson runs on: "" for the built-in model, else model_folder with "~/"
// expanded from $HOME and a relative path taken from the folder of lesson.path.
std::string lesson_model_path(const Lesson& lesson);

// The lessons shipped in `dir` (default: the source tree's scenarios/), *.json sorted by name.
std::vector<std::string> list_lessons(const std::string& dir = {});
std::string default_scenarios_dir();

// [SECTION] Running headless
struct LessonNumber {
    std::string label;  // "load CV"
    std::string value;  // "0.42"
};

struct LessonStepResult {
    int index = 0;                      // 0-based
    const LessonStep* step = nullptr;   // points into the Lesson given to run()
    std::vector<LessonNumber> numbers;  // the key numbers of this step
    std::vector<std::string> files;     // files exported (empty without an output folder)
};

struct LessonRunOptions {
    std::string out_dir;                // export each step's plots here (PNG+SVG+CSV); "" = none
    std::string model_path;             // builtin lessons: the model; "" = the lesson's model_folder, else builtin_model_path()
    std::string configs_dir;            // gallery configs; "" = the source tree's assets/configs
    int max_train_steps = -1;           // cap every mix2d train action (tests); -1 = as written
    bool random_model_if_missing = false;  // builtin: random LM weights when the file is absent (development)
};

// Runs every step in order with the real engine. on_step is called after each step (for the CLI
// to print as it goes). Throws moe::Error naming the lesson file, the step's line and what failed
// (an unknown gallery config, a knob the model refuses, an unwritable output folder, a
// model_folder that is missing or does not load: "lesson.json: model_folder: /path: ...").
std::vector<LessonStepResult> run_lesson(const Lesson& lesson, const LessonRunOptions& opt,
                                         const std::function<void(const LessonStepResult&)>& on_step = {});

}  // namespace moe
