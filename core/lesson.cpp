// [SECTION] Names
// [SECTION] Knobs
// [SECTION] Line tracking (SAX pass)
// [SECTION] Field checking
// [SECTION] Parsing
// [SECTION] Files
// (the runner is in lesson_run.cpp)
#include "core/lesson.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "core/plot.h"

namespace moe {

using nlohmann::json;

// [SECTION] Names

static constexpr const char* kModelNames[] = {"builtin", "mix2d", "gallery", "systems"};
static constexpr const char* kPanelNames[] = {"router", "load", "heatmap", "tokens", "counters", "prediction", "training", "systems"};

const char* lesson_model_name(LessonModel m) {
    const int i = static_cast<int>(m);
    MOE_ASSERT(i >= 0 && i < 4, "LessonModel out of range");
    return kModelNames[i];
}

std::optional<LessonModel> lesson_model_from_name(std::string_view name) {
    for (int i = 0; i < 4; ++i)
        if (name == kModelNames[i]) return static_cast<LessonModel>(i);
    return std::nullopt;
}

const char* lesson_panel_name(LessonPanel p) {
    const int i = static_cast<int>(p);
    MOE_ASSERT(i >= 0 && i < 8, "LessonPanel out of range");
    return kPanelNames[i];
}

std::optional<LessonPanel> lesson_panel_from_name(std::string_view name) {
    for (int i = 0; i < 8; ++i)
        if (name == kPanelNames[i]) return static_cast<LessonPanel>(i);
    return std::nullopt;
}

// [SECTION] Knobs

bool LessonKnobs::empty() const {
    return !scheme && !drop_policy && !n_experts && !k && !capacity_factor && !renormalize && !add_noise &&
           !noise_scale && !jitter_eps && !n_groups && !topk_groups && !routed_scaling && !sinkhorn_iters &&
           !bias_update_rate && !seed && !layer && !token && !shared_experts && !cumulative;
}

void apply_knobs(const LessonKnobs& kn, RouterConfig& rc) {
    if (kn.scheme) rc.scheme = *kn.scheme;
    if (kn.drop_policy) rc.drop_policy = *kn.drop_policy;
    if (kn.n_experts) rc.n_experts = *kn.n_experts;
    if (kn.k) rc.k = *kn.k;
    if (kn.capacity_factor) rc.capacity_factor = *kn.capacity_factor;
    if (kn.renormalize) rc.renormalize = *kn.renormalize;
    if (kn.add_noise) rc.add_noise = *kn.add_noise;
    if (kn.noise_scale) rc.noise_scale = *kn.noise_scale;
    if (kn.jitter_eps) rc.jitter_eps = *kn.jitter_eps;
    if (kn.n_groups) rc.n_groups = *kn.n_groups;
    if (kn.topk_groups) rc.topk_groups = *kn.topk_groups;
    if (kn.routed_scaling) rc.routed_scaling = *kn.routed_scaling;
    if (kn.sinkhorn_iters) rc.sinkhorn_iters = *kn.sinkhorn_iters;
    if (kn.bias_update_rate) rc.bias_update_rate = *kn.bias_update_rate;
    if (kn.seed) rc.seed = *kn.seed;
}

void apply_knobs(const LessonKnobs& kn, LessonView& view) {
    if (kn.layer) view.layer = *kn.layer;
    if (kn.token) view.token = *kn.token;
    if (kn.shared_experts) view.shared_experts = *kn.shared_experts;
    if (kn.cumulative) view.cumulative = *kn.cumulative;
}

// [SECTION] Line tracking (SAX pass)
//
// nlohmann-json does not keep the position of values, so a first SAX pass over the text records
// the line of every field path ("steps[2].knobs.k"). The input is fed through an iterator that
// counts lines as the lexer pulls characters; at each SAX event the line of the last non-blank
// character read is the line of the token just scanned (a number's one-character lookahead is a
// delimiter or blank, so it does not move it to the next line).

namespace {

struct LineCounter {
    int line = 1;
    int token_line = 1;  // line of the last non-blank character read
};

class CountingIterator {
public:
    using iterator_category = std::input_iterator_tag;
    using value_type = char;
    using difference_type = std::ptrdiff_t;
    using pointer = const char*;
    using reference = const char&;

    CountingIterator() = default;
    CountingIterator(const char* p, LineCounter* counter) : p_(p), counter_(counter) {}
    reference operator*() const { return *p_; }
    CountingIterator& operator++() {
        const char c = *p_;
        if (c == '\n') ++counter_->line;
        else if (c != ' ' && c != '\t' && c != '\r') counter_->token_line = counter_->line;
        ++p_;
        return *this;
    }
    CountingIterator operator++(int) {
        CountingIterator old = *this;
        ++*this;
        return old;
    }
    bool operator==(const CountingIterator& o) const { return p_ == o.p_; }
    bool operator!=(const CountingIterator& o) const { return p_ != o.p_; }

private:
    const char* p_ = nullptr;
    LineCounter* counter_ = nullptr;
};

struct SaxError {
    int line = 0;
    std::string field;
    std::string problem;
    std::string hint;
};

class LineSax {
public:
    explicit LineSax(const LineCounter* counter) : counter_(counter) {}

    std::map<std::string, int> lines;  // field path -> line
    std::optional<SaxError> error;

    bool null() { return value(); }
    bool boolean(bool) { return value(); }
    bool number_integer(json::number_integer_t) { return value(); }
    bool number_unsigned(json::number_unsigned_t) { return value(); }
    bool number_float(json::number_float_t, const std::string&) { return value(); }
    bool string(std::string&) { return value(); }
    bool binary(json::binary_t&) { return value(); }
    bool start_object(std::size_t) {
        const std::string p = begin_value();
        frames_.push_back({false, 0, p, {}});
        return true;
    }
    bool end_object() { return end_container(); }
    bool start_array(std::size_t) {
        const std::string p = begin_value();
        frames_.push_back({true, 0, p, {}});
        return true;
    }
    bool end_array() { return end_container(); }
    bool key(std::string& k) {
        Frame& f = frames_.back();
        pending_key_ = k;
        const std::string p = child_path(f, k);
        if (!f.keys.insert(k).second) {
            error = SaxError{counter_->token_line, p, "appears twice in the same object", "keep one of them"};
            return false;
        }
        lines[p] = counter_->token_line;
        return true;
    }
    bool parse_error(std::size_t, const std::string& last_token, const nlohmann::detail::exception& ex) {
        std::string msg = ex.what();
        // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error while
        // parsing value - invalid literal; last read: 'x'": keep the part after the position.
        const size_t colon = msg.find(": ", msg.find("parse error"));
        if (colon != std::string::npos) msg = msg.substr(colon + 2);
        std::string hint = "check commas, quotes and brackets";
        if (!last_token.empty()) hint += " near '" + printable_text(last_token.substr(0, 40)) + "'";
        error = SaxError{counter_->line, "", "JSON syntax error: " + msg, hint};
        return false;
    }

private:
    struct Frame {
        bool is_array = false;
        int index = 0;
        std::string path;
        std::set<std::string> keys;
    };

    static std::string child_path(const Frame& f, const std::string& k) {
        if (f.is_array) return f.path + "[" + std::to_string(f.index) + "]";
        return f.path.empty() ? k : f.path + "." + k;
    }
    std::string begin_value() {
        if (frames_.empty()) return "";
        Frame& f = frames_.back();
        const std::string p = child_path(f, pending_key_);
        if (f.is_array) lines[p] = counter_->token_line;
        return p;
    }
    bool value() {
        begin_value();
        if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
        return true;
    }
    bool end_container() {
        frames_.pop_back();
        if (!frames_.empty() && frames_.back().is_array) ++frames_.back().index;
        return true;
    }

    const LineCounter* counter_;
    std::vector<Frame> frames_;
    std::string pending_key_;
};

// [SECTION] Field checking

int edit_distance(std::string_view a, std::string_view b) {
    std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
    for (size_t i = 1; i <= a.size(); ++i) {
        cur[0] = static_cast<int>(i);
        for (size_t j = 1; j <= b.size(); ++j)
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

// Shows a JSON value in an error message, shortened.
std::string shown(const json& v) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return printable_text(s);
}

std::string join(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
    return s;
}

class Checker {
public:
    Checker(std::string where, std::map<std::string, int> lines) : where_(std::move(where)), lines_(std::move(lines)) {}

    int line_of(std::string path) const {
        for (;;) {
            const auto it = lines_.find(path);
            if (it != lines_.end()) return it->second;
            const size_t cut = path.find_last_of(".[");
            if (cut == std::string::npos || path.empty()) return 1;
            path.resize(cut);
        }
    }

    [[noreturn]] void fail(const std::string& path, const std::string& problem, const std::string& hint = {}) const {
        throw Error(where_ + ": line " + std::to_string(line_of(path)), path.empty() ? "(top level)" : path, problem, hint);
    }

    static std::string at(const std::string& parent, const std::string& key) {
        return parent.empty() ? key : parent + "." + key;
    }

    void object(const std::string& path, const json& j, const std::vector<std::string>& allowed) const {
        if (!j.is_object()) fail(path, "expected an object {...}, got " + shown(j));
        for (const auto& [key, value] : j.items()) {
            if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
            std::string best;
            int best_d = 1 << 30;
            for (const std::string& a : allowed) {
                const int d = edit_distance(key, a);
                if (d < best_d) { best_d = d; best = a; }
            }
            const bool close = best_d <= std::max<int>(2, static_cast<int>(key.size()) / 3);
            fail(at(path, key), "unknown field",
                 close ? "did you mean \"" + best + "\"?" : "known fields here: " + join(allowed));
        }
    }

    const json* find(const json& obj, const std::string& key) const {
        const auto it = obj.find(key);
        return it == obj.end() ? nullptr : &*it;
    }

    const json& require(const std::string& path, const json& obj, const std::string& key) const {
        const json* v = find(obj, key);
        if (!v) fail(at(path, key), "is missing", "this field is required");
        return *v;
    }

    std::string text(const std::string& path, const json& v, size_t max_len, bool allow_empty = false) const {
        if (!v.is_string()) fail(path, "expected a string, got " + shown(v));
        const std::string s = v.get<std::string>();
        if (!allow_empty && s.empty()) fail(path, "is empty", "write some text");
        if (s.size() > max_len) fail(path, "is " + std::to_string(s.size()) + " bytes long", "at most " + std::to_string(max_len));
        return s;
    }

    int64_t integer(const std::string& path, const json& v, int64_t lo, int64_t hi) const {
        const std::string expect = "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
        if (v.is_number_unsigned()) {
            const uint64_t u = v.get<uint64_t>();
            if (u > static_cast<uint64_t>(hi)) fail(path, expect + ", got " + shown(v));
            return static_cast<int64_t>(u);
        }
        if (!v.is_number_integer()) fail(path, expect + ", got " + shown(v));
        const int64_t x = v.get<int64_t>();
        if (x < lo || x > hi) fail(path, expect + ", got " + shown(v));
        return x;
    }

    uint64_t unsigned_integer(const std::string& path, const json& v) const {
        if (!v.is_number_unsigned()) fail(path, "expected an integer >= 0, got " + shown(v));
        return v.get<uint64_t>();
    }

    // A number in [lo, hi], or (lo, hi] when lo_open.
    float number(const std::string& path, const json& v, double lo, double hi, bool lo_open) const {
        char range[96];
        std::snprintf(range, sizeof range, "expected a number %s %g and <= %g", lo_open ? ">" : ">=", lo, hi);
        if (!v.is_number()) fail(path, std::string(range) + ", got " + shown(v));
        const double x = v.get<double>();
        if (!std::isfinite(x) || x > hi || x < lo || (lo_open && x == lo)) fail(path, std::string(range) + ", got " + shown(v));
        return static_cast<float>(x);
    }

    bool boolean(const std::string& path, const json& v) const {
        if (!v.is_boolean()) fail(path, "expected true or false, got " + shown(v));
        return v.get<bool>();
    }

private:
    std::string where_;
    std::map<std::string, int> lines_;
};

std::string scheme_list() {
    std::string s;
    for (int i = 0; i < kNumSchemes; ++i) s += (i ? ", " : "") + std::string(scheme_name(static_cast<Scheme>(i)));
    return s;
}

LessonKnobs parse_knobs(const Checker& c, const std::string& path, const json& j) {
    static const std::vector<std::string> kKnobs = {
        "scheme", "drop_policy", "n_experts", "k", "capacity_factor", "renormalize", "add_noise", "noise_scale",
        "jitter_eps", "n_groups", "topk_groups", "routed_scaling", "sinkhorn_iters", "bias_update_rate", "seed",
        "layer", "token", "cursor", "shared_experts", "cumulative"};
    c.object(path, j, kKnobs);
    LessonKnobs k;
    const auto p = [&](const char* key) { return Checker::at(path, key); };
    if (const json* v = c.find(j, "scheme")) {
        const std::string s = c.text(p("scheme"), *v, 64);
        k.scheme = scheme_from_name(s);
        if (!k.scheme) c.fail(p("scheme"), "unknown scheme \"" + printable_text(s) + "\"", "one of: " + scheme_list());
    }
    if (const json* v = c.find(j, "drop_policy")) {
        const std::string s = c.text(p("drop_policy"), *v, 64);
        k.drop_policy = drop_policy_from_name(s);
        if (!k.drop_policy) {
            std::string names;
            for (int i = 0; i < 3; ++i) names += (i ? ", " : "") + std::string(drop_policy_name(static_cast<DropPolicy>(i)));
            c.fail(p("drop_policy"), "unknown drop policy \"" + printable_text(s) + "\"", "one of: " + names);
        }
    }
    if (const json* v = c.find(j, "n_experts")) k.n_experts = static_cast<int>(c.integer(p("n_experts"), *v, 1, 1024));
    if (const json* v = c.find(j, "k")) k.k = static_cast<int>(c.integer(p("k"), *v, 1, 64));
    if (const json* v = c.find(j, "capacity_factor")) k.capacity_factor = c.number(p("capacity_factor"), *v, 0, 64, true);
    if (const json* v = c.find(j, "renormalize")) k.renormalize = c.boolean(p("renormalize"), *v);
    if (const json* v = c.find(j, "add_noise")) k.add_noise = c.boolean(p("add_noise"), *v);
    if (const json* v = c.find(j, "noise_scale")) k.noise_scale = c.number(p("noise_scale"), *v, 0, 100, false);
    if (const json* v = c.find(j, "jitter_eps")) {
        k.jitter_eps = c.number(p("jitter_eps"), *v, 0, 1, false);
        if (*k.jitter_eps >= 1) c.fail(p("jitter_eps"), "expected a number >= 0 and < 1, got " + shown(*v));
    }
    if (const json* v = c.find(j, "n_groups")) k.n_groups = static_cast<int>(c.integer(p("n_groups"), *v, 1, 1024));
    if (const json* v = c.find(j, "topk_groups")) k.topk_groups = static_cast<int>(c.integer(p("topk_groups"), *v, 1, 1024));
    if (const json* v = c.find(j, "routed_scaling")) k.routed_scaling = c.number(p("routed_scaling"), *v, 0, 100, true);
    if (const json* v = c.find(j, "sinkhorn_iters")) k.sinkhorn_iters = static_cast<int>(c.integer(p("sinkhorn_iters"), *v, 0, 1000));
    if (const json* v = c.find(j, "bias_update_rate")) k.bias_update_rate = c.number(p("bias_update_rate"), *v, 0, 1, false);
    if (const json* v = c.find(j, "seed")) k.seed = c.unsigned_integer(p("seed"), *v);
    if (const json* v = c.find(j, "layer")) k.layer = static_cast<int>(c.integer(p("layer"), *v, 0, 63));
    if (c.find(j, "token") && c.find(j, "cursor")) c.fail(p("cursor"), "is the same knob as \"token\"", "keep one of them");
    for (const char* name : {"token", "cursor"})
        if (const json* v = c.find(j, name)) k.token = static_cast<int>(c.integer(p(name), *v, 0, 100000));
    if (const json* v = c.find(j, "shared_experts")) k.shared_experts = c.boolean(p("shared_experts"), *v);
    if (const json* v = c.find(j, "cumulative")) k.cumulative = c.boolean(p("cumulative"), *v);
    return k;
}

LessonPointer parse_pointer(const Checker& c, const std::string& path, const json& j) {
    c.object(path, j, {"panel", "expert", "token"});
    LessonPointer ptr;
    const std::string s = c.text(Checker::at(path, "panel"), c.require(path, j, "panel"), 32);
    const std::optional<LessonPanel> panel = lesson_panel_from_name(s);
    if (!panel) {
        std::vector<std::string> names(std::begin(kPanelNames), std::end(kPanelNames));
        c.fail(Checker::at(path, "panel"), "unknown panel \"" + printable_text(s) + "\"", "one of: " + join(names));
    }
    ptr.panel = *panel;
    if (const json* v = c.find(j, "expert")) ptr.expert = static_cast<int>(c.integer(Checker::at(path, "expert"), *v, 0, 1023));
    if (const json* v = c.find(j, "token")) ptr.token = static_cast<int>(c.integer(Checker::at(path, "token"), *v, 0, 100000));
    return ptr;
}

LessonTrain parse_train(const Checker& c, const std::string& path, const json& j) {
    c.object(path, j, {"train_steps", "balance", "alpha", "z_loss", "reset"});
    LessonTrain t;
    t.train_steps = static_cast<int>(c.integer(Checker::at(path, "train_steps"), c.require(path, j, "train_steps"), 1, 100000));
    if (const json* v = c.find(j, "balance")) {
        t.balance = c.text(Checker::at(path, "balance"), *v, 32);
        if (t.balance != "none" && t.balance != "switch" && t.balance != "bias")
            c.fail(Checker::at(path, "balance"), "unknown balancing \"" + printable_text(t.balance) + "\"", "one of: none, switch, bias");
    }
    if (const json* v = c.find(j, "alpha")) t.alpha = c.number(Checker::at(path, "alpha"), *v, 0, 10, false);
    if (const json* v = c.find(j, "z_loss")) t.z_loss = c.boolean(Checker::at(path, "z_loss"), *v);
    if (const json* v = c.find(j, "reset")) t.reset = c.boolean(Checker::at(path, "reset"), *v);
    return t;
}

// Config names are file stems under assets/configs: no folders, no dots at the start.
std::string config_name(const Checker& c, const std::string& path, const json& v) {
    const std::string s = c.text(path, v, 64);
    const bool ok = s.front() != '.' && std::all_of(s.begin(), s.end(), [](char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
    });
    if (!ok) c.fail(path, "\"" + printable_text(s) + "\" is not a config name", "a file name in assets/configs without .json, e.g. \"mixtral-8x7b\"");
    return s;
}

LessonSystems parse_systems(const Checker& c, const std::string& path, const json& j) {
    c.object(path, j, {"config", "tokens", "devices", "dtype"});
    LessonSystems s;
    if (const json* v = c.find(j, "config")) s.config = config_name(c, Checker::at(path, "config"), *v);
    if (const json* v = c.find(j, "tokens")) s.tokens = c.integer(Checker::at(path, "tokens"), *v, 1, 1000000000);
    if (const json* v = c.find(j, "devices")) s.devices = static_cast<int>(c.integer(Checker::at(path, "devices"), *v, 1, 4096));
    if (const json* v = c.find(j, "dtype")) {
        s.dtype = c.text(Checker::at(path, "dtype"), *v, 16);
        static const std::vector<std::string> kTypes = {"f32", "bf16", "f16", "fp8", "int8", "int4"};
        if (std::find(kTypes.begin(), kTypes.end(), s.dtype) == kTypes.end())
            c.fail(Checker::at(path, "dtype"), "unknown dtype \"" + printable_text(s.dtype) + "\"", "one of: " + join(kTypes));
    }
    return s;
}

}  // namespace

// [SECTION] Parsing

Lesson parse_lesson(std::string_view text, const std::string& where) {
    // Pass 1: syntax, duplicate keys, and the line of every field.
    LineCounter counter;
    LineSax sax(&counter);
    json::sax_parse(CountingIterator(text.data(), &counter), CountingIterator(text.data() + text.size(), &counter), &sax);
    if (sax.error) {
        const SaxError& e = *sax.error;
        throw Error(where + ": line " + std::to_string(e.line), e.field, e.problem, e.hint);
    }
    // Pass 2: the document itself (known to be valid now).
    const json doc = json::parse(text.begin(), text.end());
    const Checker c(where, std::move(sax.lines));

    c.object("", doc, {"title", "summary", "model", "text", "knobs", "steps"});
    Lesson lesson;
    lesson.title = c.text("title", c.require("", doc, "title"), 200);
    lesson.summary = c.text("summary", c.require("", doc, "summary"), 2000);
    const std::string model = c.text("model", c.require("", doc, "model"), 32);
    const std::optional<LessonModel> m = lesson_model_from_name(model);
    if (!m) c.fail("model", "unknown model \"" + printable_text(model) + "\"", "one of: builtin, mix2d, gallery, systems");
    lesson.model = *m;
    if (const json* v = c.find(doc, "text")) {
        if (lesson.model != LessonModel::Builtin) c.fail("text", "is only used by lessons with model \"builtin\"");
        lesson.text = c.text("text", *v, 100000);
    } else if (lesson.model == LessonModel::Builtin) {
        c.fail("text", "is missing", "a builtin lesson routes a text through the model: add \"text\": \"...\"");
    }
    if (const json* v = c.find(doc, "knobs")) lesson.knobs = parse_knobs(c, "knobs", *v);

    const json& steps = c.require("", doc, "steps");
    if (!steps.is_array() || steps.empty() || steps.size() > 64)
        c.fail("steps", "expected an array of 1..64 steps, got " + shown(steps));
    for (size_t i = 0; i < steps.size(); ++i) {
        const std::string sp = "steps[" + std::to_string(i) + "]";
        const json& js = steps[i];
        c.object(sp, js, {"title", "narrative", "knobs", "text", "point_at", "train", "gallery", "systems"});
        LessonStep st;
        st.line = c.line_of(sp);
        st.title = c.text(sp + ".title", c.require(sp, js, "title"), 200);
        st.narrative = c.text(sp + ".narrative", c.require(sp, js, "narrative"), 8000);
        if (const json* v = c.find(js, "knobs")) st.knobs = parse_knobs(c, sp + ".knobs", *v);
        if (const json* v = c.find(js, "text")) {
            if (lesson.model != LessonModel::Builtin) c.fail(sp + ".text", "is only used by lessons with model \"builtin\"");
            st.text = c.text(sp + ".text", *v, 100000);
        }
        if (const json* v = c.find(js, "point_at")) st.point_at = parse_pointer(c, sp + ".point_at", *v);
        if (const json* v = c.find(js, "train")) {
            if (lesson.model != LessonModel::Mix2d) c.fail(sp + ".train", "is only used by lessons with model \"mix2d\"");
            st.train = parse_train(c, sp + ".train", *v);
        }
        if (const json* v = c.find(js, "gallery")) {
            if (lesson.model != LessonModel::Gallery) c.fail(sp + ".gallery", "is only used by lessons with model \"gallery\"");
            if (!v->is_array() || v->empty() || v->size() > 8)
                c.fail(sp + ".gallery", "expected an array of 1..8 config names, got " + shown(*v));
            for (size_t g = 0; g < v->size(); ++g)
                st.gallery.push_back(config_name(c, sp + ".gallery[" + std::to_string(g) + "]", (*v)[g]));
        }
        if (const json* v = c.find(js, "systems")) {
            if (lesson.model != LessonModel::Systems) c.fail(sp + ".systems", "is only used by lessons with model \"systems\"");
            st.systems = parse_systems(c, sp + ".systems", *v);
        }
        lesson.steps.push_back(std::move(st));
    }
    return lesson;
}

// [SECTION] Files

Lesson load_lesson(const std::string& path) {
    // Lessons are small; a cap keeps a wrong path to a huge file from being read whole.
    const std::string text = read_file(path, uint64_t(4) << 20);
    Lesson l = parse_lesson(text, path);
    l.path = path;
    return l;
}

std::string default_scenarios_dir() {
#ifdef MOE_SCENARIOS_DIR
    return MOE_SCENARIOS_DIR;
#else
    return "scenarios";
#endif
}

std::vector<std::string> list_lessons(const std::string& dir_in) {
    namespace fs = std::filesystem;
    const std::string dir = dir_in.empty() ? default_scenarios_dir() : dir_in;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error(dir, "", "is not a folder", "the lessons live in scenarios/");
    std::vector<std::string> out;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        if (e.is_regular_file(ec) && e.path().extension() == ".json") out.push_back(e.path().string());
    }
    if (ec) throw Error(dir, "", "cannot be listed: " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace moe
