// Lesson file text -> parse_lesson, and a lesson that parses is run headless with the real
// engine: builtin lessons on a small byte LM saved once, mix2d training capped at a few steps,
// gallery configs from assets/configs. Nothing is exported.
#include "core/models/lm.h"
#include "core/teach/lesson.h"
#include "fuzz/fuzz_util.h"

namespace {
const moe::LessonRunOptions& run_options() {
    static const moe::LessonRunOptions opt = [] {
        // The lessons' pointers and knobs assume the built-in model's 8 experts.
        const moe::LmConfig c = moe::fuzz::small_lm(16, 8);
        const std::string path = (moe::fuzz::scratch_dir() / "lesson-lm.safetensors").string();
        moe::LmModel::init(c, 7).save(path);
        moe::LessonRunOptions o;
        o.model_path = path;
        o.max_train_steps = 3;
        return o;
    }();
    return opt;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const moe::LessonRunOptions& opt = run_options();
    return moe::fuzz::run_one([&] {
        const moe::Lesson l = moe::parse_lesson(moe::fuzz::as_text(data, size), "fuzz-lesson.json");
        const std::vector<moe::LessonStepResult> r = moe::run_lesson(l, opt);
        if (r.size() != l.steps.size()) moe::fuzz::fail("a step was skipped");
    });
}
