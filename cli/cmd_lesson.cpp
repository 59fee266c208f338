// moelab-cli lesson: runs a lesson from scenarios/ headless with the real engine, printing each
// step's narrative and key numbers and exporting its plots (PNG + SVG + CSV) to --out.
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "core/teach/lesson.h"

namespace moe::cli {

static void print_lesson_help() {
    std::printf(
        "usage: moelab-cli lesson FILE [--out DIR] [--model PATH] [--max-train-steps N]\n"
        "       moelab-cli lesson --list\n\n"
        "Runs a lesson (a JSON file, or the name of a shipped one such as 03_switch_capacity)\n"
        "step by step with the real engine: prints each step's narrative and key numbers, and\n"
        "with --out writes that step's plots to DIR as PNG, SVG and CSV.\n"
        "  --list               list the shipped lessons in %s\n"
        "  --out DIR            export each step's plots (created if missing)\n"
        "  --model PATH         the model builtin lessons run on, over the lesson's own model_folder\n"
        "                       (a Hugging Face folder, a moelab LM file, or builtin; default: the\n"
        "                       lesson's model_folder, else the shipped model)\n"
        "  --max-train-steps N  cap every mix2d training action (quick runs)\n",
        default_scenarios_dir().c_str());
}

// A shipped lesson's name resolves to scenarios/NAME.json.
static std::string resolve_lesson(const std::string& arg) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::exists(arg, ec)) return arg;
    const fs::path shipped = fs::path(default_scenarios_dir()) / (arg + ".json");
    if (fs::exists(shipped, ec)) return shipped.string();
    throw Error("moelab-cli lesson", arg, "no such lesson file", "see moelab-cli lesson --list");
}

int cmd_lesson(Args args) {
    ArgParser ap("lesson", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        print_lesson_help();
        return 0;
    }
    const bool list = ap.flag("--list");
    LessonRunOptions opt;
    opt.out_dir = ap.value("--out", "");
    opt.model_path = ap.value("--model", "");
    opt.max_train_steps = ap.int_value("--max-train-steps", -1);
    if (opt.max_train_steps < -1)
        throw Error("moelab-cli lesson", "--max-train-steps", std::to_string(opt.max_train_steps) + " is negative", "0 or more");
    ap.finish();
    const std::vector<std::string> pos = ap.positional();

    if (list) {
        for (const std::string& f : list_lessons()) {
            const Lesson l = load_lesson(f);
            std::printf("%-36s %-8s %s\n", std::filesystem::path(f).stem().string().c_str(), lesson_model_name(l.model), l.title.c_str());
        }
        return 0;
    }
    if (pos.size() != 1) {
        print_lesson_help();
        throw Error("moelab-cli lesson", "FILE", pos.empty() ? "is missing" : "give one lesson at a time", "moelab-cli lesson 01_dense_vs_sparse");
    }
    const Lesson lesson = load_lesson(resolve_lesson(pos[0]));
    std::printf("# %s  (%s)\n\n%s\n", lesson.title.c_str(), lesson_model_name(lesson.model), lesson.summary.c_str());
    if (!lesson.model_folder.empty() && opt.model_path.empty()) std::printf("\nmodel: %s\n", lesson_model_path(lesson).c_str());
    run_lesson(lesson, opt, [&](const LessonStepResult& r) {
        const LessonStep& st = *r.step;
        std::printf("\n## Step %d/%zu: %s\n\n%s\n\n", r.index + 1, lesson.steps.size(), st.title.c_str(), st.narrative.c_str());
        if (st.point_at) {
            std::printf("  look at: %s", lesson_panel_name(st.point_at->panel));
            if (st.point_at->expert >= 0) std::printf(", expert %d", st.point_at->expert);
            if (st.point_at->token >= 0) std::printf(", token %d", st.point_at->token);
            std::printf("\n");
        }
        for (const LessonNumber& n : r.numbers) std::printf("  %-34s %s\n", n.label.c_str(), n.value.c_str());
        for (const std::string& f : r.files) std::printf("  wrote %s\n", f.c_str());
        std::fflush(stdout);
    });
    return 0;
}

}  // namespace moe::cli
