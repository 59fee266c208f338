// [SECTION] Names
// [SECTION] Knobs
// [SECTION] Line tracking (SAX pass)
// [SECTION] Field checking
// [SECTION] Parsing
// [SECTION] Files
// [SECTION] Runner: shared
// [SECTION] Runner: builtin LM
// [SECTION] Runner: mix2d
// [SECTION] Runner: gallery
// [SECTION] Runner: systems
#include "core/teach/lesson.h"

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io/json_input.h"
#include "core/io/limits.h"
#include "core/teach/export.h"
#include "core/teach/format.h"
#include "core/io/file_io.h"
#include "core/models/lm.h"
#include "core/models/model.h"
#include "core/models/mix2d.h"
#include "core/teach/params.h"
#include "core/teach/plot.h"

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
        if (too_deep()) return false;
        const std::string p = begin_value();
        frames_.push_back({false, 0, p, {}});
        return true;
    }
    bool end_object() { return end_container(); }
    bool start_array(std::size_t) {
        if (too_deep()) return false;
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

    // A lesson nests four levels at most; anything far deeper is a broken file, and stopping early
    // keeps the path strings (one per level) from growing quadratically.
    bool too_deep() {
        if (frames_.size() < static_cast<size_t>(kMaxJsonDepth)) return false;
        error = SaxError{counter_->token_line, frames_.back().path, "is nested too deeply", "a lesson nests objects and arrays only a few levels"};
        return true;
    }

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
    // Containers are described, not dumped: dump() recurses and the nesting may be arbitrarily deep.
    if (v.is_array()) return "an array of " + std::to_string(v.size());
    if (v.is_object()) return "an object";
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return printable_text(s);
}

// s += sep + item, without the sep before the first item.
void append_item(std::string& s, const char* sep, const std::string& item) {
    if (!s.empty()) s += sep;
    s += item;
}

std::string join(const std::vector<std::string>& names) {
    std::string s;
    for (const std::string& n : names) append_item(s, ", ", n);
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
        return json_integer(v, where_ + ": line " + std::to_string(line_of(path)), path.empty() ? "(top level)" : path, lo, hi, "");
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
    if (const json* v = c.find(j, "n_experts")) k.n_experts = static_cast<int>(c.integer(p("n_experts"), *v, 1, kMaxLessonExperts));
    if (const json* v = c.find(j, "k")) k.k = static_cast<int>(c.integer(p("k"), *v, 1, 64));
    if (const json* v = c.find(j, "capacity_factor")) k.capacity_factor = c.number(p("capacity_factor"), *v, 0, 64, true);
    if (const json* v = c.find(j, "renormalize")) k.renormalize = c.boolean(p("renormalize"), *v);
    if (const json* v = c.find(j, "add_noise")) k.add_noise = c.boolean(p("add_noise"), *v);
    if (const json* v = c.find(j, "noise_scale")) k.noise_scale = c.number(p("noise_scale"), *v, 0, 100, false);
    if (const json* v = c.find(j, "jitter_eps")) {
        k.jitter_eps = c.number(p("jitter_eps"), *v, 0, 1, false);
        if (*k.jitter_eps >= 1) c.fail(p("jitter_eps"), "expected a number >= 0 and < 1, got " + shown(*v));
    }
    if (const json* v = c.find(j, "n_groups")) k.n_groups = static_cast<int>(c.integer(p("n_groups"), *v, 1, kMaxLessonExperts));
    if (const json* v = c.find(j, "topk_groups")) k.topk_groups = static_cast<int>(c.integer(p("topk_groups"), *v, 1, kMaxLessonExperts));
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
    if (const json* v = c.find(j, "expert")) ptr.expert = static_cast<int>(c.integer(Checker::at(path, "expert"), *v, 0, kMaxLessonExperts - 1));
    if (const json* v = c.find(j, "token")) ptr.token = static_cast<int>(c.integer(Checker::at(path, "token"), *v, 0, 100000));
    return ptr;
}

LessonTrain parse_train(const Checker& c, const std::string& path, const json& j) {
    c.object(path, j, {"train_steps", "balance", "alpha", "z_loss", "reset"});
    LessonTrain t;
    t.train_steps = static_cast<int>(c.integer(Checker::at(path, "train_steps"), c.require(path, j, "train_steps"), 1, kMaxLessonTrainSteps));
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
        if (std::find(kTypes.begin(), kTypes.end(), *s.dtype) == kTypes.end())
            c.fail(Checker::at(path, "dtype"), "unknown dtype \"" + printable_text(*s.dtype) + "\"", "one of: " + join(kTypes));
    }
    return s;
}

}  // namespace

// [SECTION] Parsing

// A model_folder is a path: PATH_MAX bounds it.
constexpr size_t kMaxLessonPathBytes = 4096;

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

    c.object("", doc, {"title", "summary", "model", "model_folder", "text", "knobs", "steps"});
    Lesson lesson;
    lesson.path = where;
    lesson.title = c.text("title", c.require("", doc, "title"), 200);
    lesson.summary = c.text("summary", c.require("", doc, "summary"), 2000);
    const std::string model = c.text("model", c.require("", doc, "model"), 32);
    const std::optional<LessonModel> m = lesson_model_from_name(model);
    if (!m) c.fail("model", "unknown model \"" + printable_text(model) + "\"", "one of: builtin, mix2d, gallery, systems");
    lesson.model = *m;
    if (const json* v = c.find(doc, "model_folder")) {
        if (lesson.model != LessonModel::Builtin) c.fail("model_folder", "is only used by lessons with model \"builtin\"");
        lesson.model_folder = c.text("model_folder", *v, kMaxLessonPathBytes);
        for (const char ch : lesson.model_folder)
            if (static_cast<unsigned char>(ch) < 0x20)
                c.fail("model_folder", "\"" + printable_text(lesson.model_folder) + "\" has a control character",
                       "a folder path, e.g. \"~/models/OLMoE-1B-7B-0924\"");
    }
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
    // Each step's train_steps is capped, and so is the sum: 64 steps of the cap each would train
    // for hours when the lesson is opened.
    int64_t total_train = 0;
    for (size_t i = 0; i < lesson.steps.size(); ++i) {
        if (!lesson.steps[i].train) continue;
        total_train += lesson.steps[i].train->train_steps;
        if (total_train > kMaxLessonTrainSteps)
            c.fail("steps[" + std::to_string(i) + "].train.train_steps",
                   "brings the lesson's training to " + std::to_string(total_train) + " steps",
                   "at most " + std::to_string(kMaxLessonTrainSteps) + " in all steps together");
    }
    return lesson;
}

// [SECTION] Files

Lesson load_lesson(const std::string& path) {
    // Lessons are small; a cap keeps a wrong path to a huge file from being read whole.
    const std::string text = read_file(path, kMaxConfigBytes);
    Lesson l = parse_lesson(text, path);
    l.path = path;
    return l;
}

std::string lesson_model_path(const Lesson& lesson) {
    namespace fs = std::filesystem;
    const std::string& f = lesson.model_folder;
    if (f.empty()) return {};
    if (f == "~" || f.rfind("~/", 0) == 0) {
        const char* home = std::getenv("HOME");
        if (home && *home) return (fs::path(home) / f.substr(f.size() > 1 ? 2 : 1)).lexically_normal().string();
        return f;  // no $HOME: left as written, and the loader says it is not there
    }
    const fs::path p(f);
    if (p.is_absolute() || lesson.path.empty()) return f;
    return (fs::path(lesson.path).parent_path() / p).lexically_normal().string();
}

static std::unique_ptr<Model> open_lesson_folder(const Lesson& lesson, const std::string& folder) {
    const std::string where = lesson.path.empty() ? "lesson \"" + printable_text(lesson.title) + "\"" : lesson.path;
    std::error_code ec;
    if (!std::filesystem::exists(folder, ec))
        throw Error(where, "model_folder", "\"" + printable_text(folder) + "\" does not exist",
                    "download or generate the model there, or run the lesson on the built-in model "
                    "(moelab-cli lesson --model builtin; the app offers a button)");
    try {
        return open_model(folder);
    } catch (const Error& e) {
        throw Error(where, "model_folder", "\"" + printable_text(folder) + "\" did not load: " + e.what(),
                    "fix the folder, or run the lesson on the built-in model (moelab-cli lesson --model builtin)");
    }
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

// [SECTION] Runner: shared

namespace {

std::string fmtv(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

class Runner {
public:
    Runner(const Lesson& lesson, const LessonRunOptions& opt,
           const std::function<void(const LessonStepResult&)>& on_step)
        : lesson_(lesson), opt_(opt), on_step_(on_step),
          where_(lesson.path.empty() ? "lesson \"" + printable_text(lesson.title) + "\"" : lesson.path) {}

    std::vector<LessonStepResult> run() {
        switch (lesson_.model) {
            case LessonModel::Builtin: run_builtin(); break;
            case LessonModel::Mix2d: run_mix2d(); break;
            case LessonModel::Gallery: run_gallery(); break;
            case LessonModel::Systems: run_systems(); break;
        }
        return std::move(results_);
    }

private:
    [[noreturn]] void fail(size_t i, const std::string& field, const std::string& problem, const std::string& hint = {}) const {
        const LessonStep& st = lesson_.steps[i];
        throw Error(where_ + ": line " + std::to_string(st.line), "steps[" + std::to_string(i) + "]" + (field.empty() ? "" : "." + field),
                    problem, hint);
    }

    LessonStepResult begin(size_t i) const {
        LessonStepResult r;
        r.index = static_cast<int>(i);
        r.step = &lesson_.steps[i];
        return r;
    }

    void add(LessonStepResult& r, std::string label, std::string value) const {
        r.numbers.push_back({std::move(label), std::move(value)});
    }

    void save(LessonStepResult& r, const Plot& plot, const std::string& csv, const std::string& what) const {
        if (opt_.out_dir.empty()) return;
        char stem[32];
        std::snprintf(stem, sizeof stem, "step%02d_", r.index + 1);
        for (std::string& f : export_all(plot, csv, opt_.out_dir, stem + what)) r.files.push_back(std::move(f));
    }

    void finish(LessonStepResult r) {
        results_.push_back(std::move(r));
        if (on_step_) on_step_(results_.back());
    }

    std::string configs_dir() const {
        if (!opt_.configs_dir.empty()) return opt_.configs_dir;
#ifdef MOE_ASSETS_DIR
        return std::string(MOE_ASSETS_DIR) + "/configs";
#else
        return "assets/configs";
#endif
    }

    // A gallery config by name; a missing one is the lesson's mistake at `field`.
    ModelConfig gallery_config(size_t i, const std::string& field, const std::string& name) const {
        namespace fs = std::filesystem;
        const fs::path path = fs::path(configs_dir()) / (name + ".json");
        std::error_code ec;
        if (!fs::is_regular_file(path, ec)) {
            std::vector<std::string> known;
            for (const fs::directory_entry& e : fs::directory_iterator(configs_dir(), ec))
                if (e.path().extension() == ".json") known.push_back(e.path().stem().string());
            std::sort(known.begin(), known.end());
            fail(i, field, "no config \"" + name + "\" in " + configs_dir(), "known: " + join(known));
        }
        return load_model_config(path.string());
    }

    // The model a builtin lesson runs on: --model, else the lesson's model_folder, else the
    // built-in one. A model_folder that is missing or fails to load is the lesson's error.
    std::unique_ptr<Model> open_lesson_model() const {
        if (!opt_.model_path.empty()) return open_model(opt_.model_path);
        const std::string folder = lesson_model_path(lesson_);
        if (folder.empty()) {
            std::error_code ec;
            if (opt_.random_model_if_missing && !std::filesystem::exists(builtin_model_path(), ec)) return random_builtin_model(1);
            return open_model(std::string());
        }
        return open_lesson_folder(lesson_, folder);
    }

    void run_builtin();
    void run_mix2d();
    void run_gallery();
    void run_systems();

    const Lesson& lesson_;
    const LessonRunOptions& opt_;
    const std::function<void(const LessonStepResult&)>& on_step_;
    std::string where_;
    std::vector<LessonStepResult> results_;
};

LmModel load_lm(const LessonRunOptions& opt) {
    const std::string path = opt.model_path.empty() ? builtin_model_path() : opt.model_path;
    std::error_code ec;
    if (opt.random_model_if_missing && !std::filesystem::exists(path, ec)) return LmModel::init(LmConfig{}, 1);
    return LmModel::load(path);
}

// [SECTION] Runner: builtin LM

void Runner::run_builtin() {
    const std::unique_ptr<Model> model = open_lesson_model();
    const ModelInfo& info = model->info();
    const Tokenizer& tok = model->tokenizer();
    RouterConfig rc = info.trained_router;
    LessonView view;
    view.shared_experts = rc.shared_experts;
    apply_knobs(lesson_.knobs, rc);
    apply_knobs(lesson_.knobs, view);
    std::string text = lesson_.text;
    const int n_layers = static_cast<int>(info.moe_layer_index.size());
    const int n_experts = info.moe.n_experts;
    std::vector<std::vector<int64_t>> cumulative(static_cast<size_t>(n_layers), std::vector<int64_t>(static_cast<size_t>(n_experts), 0));
    auto piece = [&](TokenId id) {
        const TokenId one[1] = {id};
        return tok.display_pieces(one).front();  // "<id>" for ids past the tokenizer's (padded vocabularies)
    };

    for (size_t i = 0; i < lesson_.steps.size(); ++i) {
        const LessonStep& st = lesson_.steps[i];
        apply_knobs(st.knobs, rc);
        apply_knobs(st.knobs, view);
        if (st.text) text = *st.text;
        if (rc.n_experts != n_experts)
            fail(i, "knobs.n_experts", "the model has " + std::to_string(n_experts) + " experts per layer, not " +
                 std::to_string(rc.n_experts), "n_experts is a mix2d knob; leave it out here");
        if (view.layer >= n_layers)
            fail(i, "knobs.layer", "the model has " + std::to_string(n_layers) + " MoE layers, not layer " + std::to_string(view.layer),
                 "0.." + std::to_string(n_layers - 1));
        std::vector<TokenId> ids = tok.encode(text, false);
        const size_t n_all = ids.size();
        if (ids.size() > static_cast<size_t>(info.max_seq)) ids.resize(static_cast<size_t>(info.max_seq));
        if (ids.empty()) fail(i, "text", "is empty", "the model needs at least one token to route");
        const int n_tokens = static_cast<int>(ids.size());
        if (view.token >= n_tokens)
            fail(i, "knobs.token", "token " + std::to_string(view.token) + " is past the end of the text (" + std::to_string(n_tokens) + " tokens)");

        ModelRunOptions run;
        run.router = rc;
        run.router.shared_experts = view.shared_experts;
        ModelForward fwd;
        try {
            validate(run.router, n_tokens);
            model->forward(ids, run, fwd);
        } catch (const Error& e) {
            fail(i, "knobs", e.what());
        }
        MOE_ASSERT(static_cast<int>(fwd.traces.size()) == n_layers, "one trace per MoE layer");
        const RoutingTrace& tr = fwd.traces[static_cast<size_t>(view.layer)];
        for (int e = 0; e < tr.n_experts && e < static_cast<int>(tr.expert_load.size()); ++e) cumulative[view.layer][e] += tr.expert_load[e];

        LessonStepResult r = begin(i);
        const int k_eff = effective_k(rc);
        add(r, "model", info.name);
        add(r, "routing", std::string(scheme_label(rc.scheme)) + ", K = " + (k_eff > 0 ? std::to_string(k_eff) : std::string("varies")) +
                              " of " + std::to_string(tr.n_experts) + " experts, MoE layer " + std::to_string(view.layer));
        add(r, "tokens routed", std::to_string(n_tokens) + (ids.size() < n_all ? " (text cut at the model's context)" : ""));
        std::string load;
        for (int v : tr.expert_load) append_item(load, " ", std::to_string(v));
        add(r, "load per expert", load);
        add(r, "capacity per expert", tr.capacity < 0 ? std::string("none (dropless)") : std::to_string(tr.capacity) + " (capacity_factor " + fmtv("%.2f", rc.capacity_factor) + ")");
        add(r, "load CV", fmtv("%.3f", tr.stats.load_cv));
        add(r, "max/mean load", fmtv("%.2f", tr.stats.max_over_mean));
        add(r, "dropped pairs", std::to_string(tr.stats.n_dropped) + " of " + std::to_string(tr.stats.n_pairs) + " (" +
                                    fmtv("%.1f%%", 100.0 * tr.stats.frac_dropped) + ")");
        add(r, "tokens with no expert", std::to_string(tr.stats.n_tokens_unrouted));
        add(r, "aux loss (1 = uniform)", fmtv("%.3f", tr.stats.aux_loss));
        add(r, "router entropy (nats)", fmtv("%.3f", tr.stats.router_entropy));
        const double loss = next_token_loss(fwd.logits, ids);
        if (std::isfinite(loss)) add(r, "loss (nats/token)", fmtv("%.3f", loss) + " (perplexity " + fmtv("%.2f", std::exp(loss)) + ")");
        std::string chosen;
        for (const RoutedPair& p : tr.token_pairs(view.token))
            append_item(chosen, ", ", ("expert " + std::to_string(p.expert) + " gate " + fmtv("%.2f", p.gate)) + (p.dropped ? " DROPPED" : ""));
        add(r, "token " + std::to_string(view.token) + " '" + piece(ids[static_cast<size_t>(view.token)]) + "'",
            chosen.empty() ? std::string("no expert") : chosen);
        const RowVec row = fwd.logits.row(view.token);
        std::string next;
        for (const auto& [id, prob] : top_next_bytes(row, 3)) {
            std::string item(1, '\'');  // appends: GCC 12's -Wrestrict misfires on "'" + std::string
            item += piece(id);
            item += "' ";
            item += fmtv("%.0f%%", 100.0 * prob);
            append_item(next, ", ", item);
        }
        add(r, "next token after it", next);
        if (view.cumulative) {
            std::string cum;
            for (int64_t v : cumulative[view.layer]) append_item(cum, " ", std::to_string(v));
            add(r, "cumulative load", cum);
        }

        const TokenRows rows = token_rows(tok, ids);
        const std::string layer = "layer " + std::to_string(view.layer);
        save(r, load_plot(tr, "Expert load, " + layer + ", " + scheme_name(rc.scheme)), load_csv(tr), "load");
        save(r, heatmap_plot(tr, rows, "Router probabilities, " + layer + ", " + scheme_name(rc.scheme)), heatmap_csv(tr, rows), "heatmap");
        if (view.cumulative)
            save(r, expert_counts_plot(cumulative[view.layer], "Cumulative load since the lesson began, " + layer, "tokens"),
                 expert_counts_csv(cumulative[view.layer]), "cumulative");
        finish(std::move(r));
    }
}

// [SECTION] Runner: mix2d

void Runner::run_mix2d() {
    Mix2dConfig cfg;
    const auto apply_structural = [](const LessonKnobs& k, Mix2dConfig& c) {
        if (k.n_experts) c.n_experts = *k.n_experts;
        if (k.seed) c.seed = *k.seed;
        if (k.scheme) c.scheme = *k.scheme;
        if (k.k) c.k = *k.k;
        if (k.jitter_eps) c.jitter_eps = *k.jitter_eps;
        if (k.bias_update_rate) c.bias_rate = *k.bias_update_rate;
    };
    apply_structural(lesson_.knobs, cfg);
    if (!mix2d_supports(cfg.scheme))
        throw Error(where_ + ": line 1", "knobs.scheme", std::string("the 2D lab cannot train with ") + scheme_name(cfg.scheme),
                    "use switch, topk_mixtral, topk_gshard, soft, gshard_top2, sinkhorn or sigmoid_bias");
    Mix2dTrainer trainer = [&] {
        try {
            return Mix2dTrainer(cfg);
        } catch (const Error& e) {
            throw Error(where_ + ": line 1", "knobs", e.what());
        }
    }();
    TrainingCurves curves;

    for (size_t i = 0; i < lesson_.steps.size(); ++i) {
        const LessonStep& st = lesson_.steps[i];
        try {
            if (st.train && st.train->reset) {
                trainer.reset();
                curves = {};
            }
            if (st.train) trainer.set_balance(*mix2d_balance_from_name(st.train->balance));
            if (st.knobs.scheme && !mix2d_supports(*st.knobs.scheme))
                fail(i, "knobs.scheme", std::string("the 2D lab cannot train with ") + scheme_name(*st.knobs.scheme));
            Mix2dConfig next = trainer.config();
            apply_structural(st.knobs, next);
            if (st.knobs.n_experts || st.knobs.seed) {
                trainer.reset(next);  // a new structure or seed is a new run
                curves = {};
            } else {
                if (st.knobs.scheme) trainer.set_scheme(next.scheme);
                if (st.knobs.k) trainer.set_k(next.k);
                if (st.knobs.jitter_eps) trainer.set_jitter(next.jitter_eps);
                if (st.knobs.bias_update_rate) trainer.set_expert_bias(trainer.config().expert_bias, next.bias_rate);
            }
            if (st.train && st.train->alpha) trainer.set_switch_loss(trainer.config().switch_loss, *st.train->alpha);
            if (st.train && st.train->z_loss) trainer.set_z_loss(*st.train->z_loss, trainer.config().beta);
        } catch (const Error& e) {
            if (e.where().rfind(where_, 0) == 0) throw;
            fail(i, st.train ? "train" : "knobs", e.what());
        }
        int n_train = st.train ? st.train->train_steps : 0;
        if (opt_.max_train_steps >= 0) n_train = std::min(n_train, opt_.max_train_steps);
        for (int s = 0; s < n_train; ++s) {
            const Mix2dMetrics m = trainer.step();
            curves.add(m.step, m.loss, m.load_cv, m.load);
        }
        const Mix2dEval ev = trainer.evaluate();
        const Mix2dConfig& c = trainer.config();

        LessonStepResult r = begin(i);
        std::string balancing = c.switch_loss ? "Switch loss (alpha " + fmtv("%g", c.alpha) + ")" : std::string();
        if (c.expert_bias) append_item(balancing, " + ", std::string("aux-loss-free bias"));
        if (c.z_loss) append_item(balancing, " + ", std::string("z-loss"));
        add(r, "router", std::string(scheme_label(c.scheme)) + ", K = " + std::to_string(c.k) + ", " + std::to_string(c.n_experts) + " experts");
        add(r, "balancing", balancing.empty() ? std::string("none") : balancing);
        add(r, "steps trained", std::to_string(trainer.steps_done()) + (n_train > 0 ? " (+" + std::to_string(n_train) + " in this step)" : ""));
        if (!curves.loss.empty()) add(r, "last batch loss", fmtv("%.4f", curves.loss.back()));
        add(r, "evaluation loss (MSE)", fmtv("%.4f", ev.loss));
        std::string load;
        for (int v : ev.load) append_item(load, " ", std::to_string(v));
        add(r, "evaluation load per expert", load);
        add(r, "load CV", fmtv("%.3f", ev.load_cv));
        add(r, "idle experts (< 10% of mean load)", std::to_string(ev.n_idle) + " of " + std::to_string(c.n_experts));

        std::vector<int64_t> ev_load(ev.load.begin(), ev.load.end());
        save(r, expert_counts_plot(ev_load, "Load on the evaluation points after " + std::to_string(trainer.steps_done()) + " steps", "points"),
             expert_counts_csv(ev_load), "load");
        if (curves.size() > 0) {
            save(r, training_loss_plot(curves, "Training loss and load CV"), training_csv(curves), "training_loss");
            save(r, training_load_plot(curves, "Each expert's share of the batch"), training_csv(curves), "training_load");
        }
        finish(std::move(r));
    }
}

// [SECTION] Runner: gallery

void Runner::run_gallery() {
    std::vector<std::string> shown_configs;
    std::optional<int> k_override = lesson_.knobs.k;
    for (size_t i = 0; i < lesson_.steps.size(); ++i) {
        const LessonStep& st = lesson_.steps[i];
        if (!st.gallery.empty()) shown_configs = st.gallery;
        if (st.knobs.k) k_override = st.knobs.k;
        if (shown_configs.empty()) fail(i, "gallery", "no configs to show yet", "list some, e.g. \"gallery\": [\"mixtral-8x7b\"]");
        LessonStepResult r = begin(i);
        BarChart chart;
        chart.title = "Total vs active parameters (billions)";
        chart.y_label = "parameters (billions)";
        chart.names = {"total", "active per token"};
        chart.values.assign(2, {});
        for (size_t g = 0; g < shown_configs.size(); ++g) {
            ModelConfig mc = gallery_config(i, "gallery[" + std::to_string(g) + "]", shown_configs[g]);
            std::string label = shown_configs[g];
            if (k_override && mc.n_experts > 0) {
                if (*k_override > mc.n_experts)
                    fail(i, "knobs.k", "K = " + std::to_string(*k_override) + " is more than " + shown_configs[g] + "'s " +
                                           std::to_string(mc.n_experts) + " experts");
                mc.k = *k_override;
                label += " (K=" + std::to_string(mc.k) + ")";
            }
            const ParamReport rep = count_model_params(mc, "bf16", 4096);
            add(r, label, "total " + format_count(static_cast<double>(rep.total_params)) + ", active " +
                              format_count(static_cast<double>(rep.active_params)) + " (" + fmtv("%.1f%%", 100.0 * rep.active_fraction) +
                              "), " + std::to_string(mc.n_experts) + " experts top-" + std::to_string(mc.k) +
                              (mc.n_shared > 0 ? " + " + std::to_string(mc.n_shared) + " shared" : std::string()) + ", " +
                              format_count(rep.flops_per_token) + " FLOPs/token, " + format_bytes(rep.resident_bytes) + " of bf16 weights");
            chart.categories.push_back(label);
            chart.values[0].push_back(static_cast<double>(rep.total_params) / 1e9);
            chart.values[1].push_back(static_cast<double>(rep.active_params) / 1e9);
        }
        save(r, bar_chart_plot(chart), bar_chart_csv(chart), "params");
        finish(std::move(r));
    }
}

// [SECTION] Runner: systems

void Runner::run_systems() {
    std::string config = "builtin", dtype = "bf16";
    int64_t tokens = 4096;
    int devices = 8;
    std::optional<int> k_override = lesson_.knobs.k;
    for (size_t i = 0; i < lesson_.steps.size(); ++i) {
        const LessonStep& st = lesson_.steps[i];
        if (st.systems) {
            if (st.systems->config) config = *st.systems->config;
            if (st.systems->tokens) tokens = *st.systems->tokens;
            if (st.systems->devices) devices = *st.systems->devices;
            if (st.systems->dtype) dtype = *st.systems->dtype;
        }
        if (st.knobs.k) k_override = st.knobs.k;

        // The shape of the model: d, N, K, MoE layers, total and expert parameters.
        std::string name;
        double d = 0, n_exp = 0, k = 0, n_moe = 0, total = 0, experts_total = 0;
        if (config == "builtin") {
            const LmModel model = load_lm(opt_);
            const LmConfig& c = model.config();
            name = "built-in LM";
            d = c.d_model;
            n_exp = c.moe.n_experts;
            k = c.router.k;
            n_moe = n_moe_layers(c);
            total = static_cast<double>(model.n_params());
            experts_total = n_moe * static_cast<double>(count_params(c.moe, false, c.router.k) - count_params(c.moe, true, c.router.k)) *
                            n_exp / std::max(1.0, n_exp - k);
        } else {
            const ModelConfig mc = gallery_config(i, "systems.config", config);
            const ParamReport rep = count_model_params(mc, "bf16", 4096);
            name = config;
            d = static_cast<double>(mc.d_model);
            n_exp = static_cast<double>(mc.n_experts);
            k = static_cast<double>(mc.k);
            n_moe = static_cast<double>(rep.n_moe_layers);
            total = static_cast<double>(rep.total_params);
            experts_total = static_cast<double>(rep.breakdown.experts.total);
        }
        if (k_override) {
            if (*k_override > n_exp) fail(i, "knobs.k", "K = " + std::to_string(*k_override) + " is more than the " + fmtv("%.0f", n_exp) + " experts");
            k = *k_override;
        }
        if (!(n_exp > 0)) fail(i, "systems.config", name + " has no routed experts", "pick a MoE config");
        const double bytes = dtype_bytes(dtype, where_);
        const double T = static_cast<double>(tokens), G = devices;
        const double per_expert = T * k / n_exp;
        const double a2a_layer = 2.0 * T * k * d * bytes * (G - 1) / G;

        LessonStepResult r = begin(i);
        add(r, "model", name + ": d_model " + fmtv("%.0f", d) + ", " + fmtv("%.0f", n_exp) + " experts, K = " + fmtv("%.0f", k) + ", " +
                            fmtv("%.0f", n_moe) + " MoE layers");
        add(r, "batch", fmtv("%.0f", T) + " tokens on " + std::to_string(devices) + " devices, " + dtype);
        add(r, "tokens per expert (T*K/N)", fmtv("%.1f", per_expert));
        add(r, "resident weights (all experts)", format_bytes(total * bytes));
        add(r, "expert weights per device", format_bytes(experts_total * bytes / G));
        add(r, "weights one token uses", format_bytes((total - experts_total + experts_total * k / n_exp) * bytes));
        add(r, "all-to-all per MoE layer", format_bytes(a2a_layer));
        add(r, "all-to-all per forward pass", format_bytes(a2a_layer * n_moe));

        LineChart traffic;
        traffic.title = "All-to-all bytes per MoE layer (MB), T = " + fmtv("%.0f", T) + ", " + name;
        traffic.x_label = "devices G";
        traffic.y_label = "MB per layer";
        traffic.names = {"K = " + fmtv("%.0f", k), "K = 1"};
        traffic.ys.assign(2, {});
        for (int g = 1; g <= 64; g *= 2) {
            traffic.xs.push_back(static_cast<float>(g));
            traffic.ys[0].push_back(static_cast<float>(2.0 * T * k * d * bytes * (g - 1) / g / 1e6));
            traffic.ys[1].push_back(static_cast<float>(2.0 * T * 1 * d * bytes * (g - 1) / g / 1e6));
        }
        save(r, line_chart_plot(traffic), line_chart_csv(traffic), "all_to_all");
        LineChart batch;
        batch.title = "Tokens each expert sees per batch, " + name;
        batch.x_label = "log2(tokens in the batch T)";
        batch.y_label = "tokens per expert";
        batch.names = {"T*K/N"};
        batch.ys.assign(1, {});
        for (int e = 0; e <= 16; ++e) {
            batch.xs.push_back(static_cast<float>(e));
            batch.ys[0].push_back(static_cast<float>(std::ldexp(1.0, e) * k / n_exp));
        }
        save(r, line_chart_plot(batch), line_chart_csv(batch), "batch");
        finish(std::move(r));
    }
}

}  // namespace

std::vector<LessonStepResult> run_lesson(const Lesson& lesson, const LessonRunOptions& opt,
                                         const std::function<void(const LessonStepResult&)>& on_step) {
    return Runner(lesson, opt, on_step).run();
}

}  // namespace moe
