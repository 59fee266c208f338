#include "core/text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"

namespace moe::text {

namespace {

// Oniguruma's Unicode \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
constexpr const char* kWordClass = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";

// One JIT stack per thread, grown on demand up to 64 MB: long runs of whitespace make
// \s+(?!\S) backtrack deeply, and the default 32 KB machine stack would fail on them. The match
// data lives beside it, so both are freed when the thread ends (the session's worker threads come
// and go with each model).
struct ThreadMatchState {
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
    pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
    pcre2_match_data* md = pcre2_match_data_create(16, nullptr);
    ThreadMatchState() { pcre2_jit_stack_assign(ctx, nullptr, stack); }
    ~ThreadMatchState() {
        pcre2_match_data_free(md);
        pcre2_match_context_free(ctx);
        pcre2_jit_stack_free(stack);
    }
    ThreadMatchState(const ThreadMatchState&) = delete;
    ThreadMatchState& operator=(const ThreadMatchState&) = delete;
};
ThreadMatchState& thread_match_state() {
    thread_local ThreadMatchState st;
    return st;
}

}  // namespace

std::string onig_to_pcre2(std::string_view p, const std::string& where, const std::string& field) {
    std::string out;
    out.reserve(p.size() + 32);
    int class_depth = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char e = p[i + 1];
            ++i;
            const bool in_class = class_depth > 0;
            switch (e) {
                case 's': out += "\\p{White_Space}"; break;
                case 'S': out += "\\P{White_Space}"; break;
                case 'w': out += in_class ? std::string(kWordClass) : "[" + std::string(kWordClass) + "]"; break;
                case 'W':
                    if (in_class)
                        throw Error(where, field, "\\W inside a character class is not supported",
                                    "pattern: " + std::string(p));
                    out += "[^" + std::string(kWordClass) + "]";
                    break;
                case 'h': case 'H':
                    // Oniguruma (Ruby syntax) reads \h as a hex digit, PCRE2 as horizontal space.
                    out += e == 'h' ? (in_class ? "0-9a-fA-F" : "[0-9a-fA-F]") : "[^0-9a-fA-F]";
                    break;
                default: out += '\\'; out += e; break;
            }
            continue;
        }
        if (c == '[') {
            // "[]" or "[^]" at a class's start is a literal ']' in both engines.
            ++class_depth;
            out += c;
            if (i + 1 < p.size() && p[i + 1] == '^') { out += '^'; ++i; }
            if (i + 1 < p.size() && p[i + 1] == ']') { out += "\\]"; ++i; }
            continue;
        }
        if (c == ']' && class_depth > 0) --class_depth;
        out += c;
    }
    return out;
}

struct Regex::Impl {
    pcre2_code* code = nullptr;
    ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view onig_pattern, const std::string& where, const std::string& field)
    : impl_(std::make_unique<Impl>()), where_(where), field_(field) {
    const std::string pat = onig_to_pcre2(onig_pattern, where, field);
    int err = 0;
    PCRE2_SIZE err_off = 0;
    // MATCH_INVALID_UTF: byte-level tokenizers pass any bytes; invalid ones then match nothing.
    impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (!impl_->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(where, field, "regex does not compile: " + std::string(reinterpret_cast<char*>(msg)) + " at offset " +
                        num(static_cast<int64_t>(err_off)),
                    "pattern: " + std::string(onig_pattern));
    }
    pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

Regex::~Regex() = default;

bool Regex::search(std::string_view text, size_t from, size_t* start, size_t* end) const {
    ThreadMatchState& st = thread_match_state();
    pcre2_match_data* md = st.md;
    const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), from, 0, md, st.ctx);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        throw Error(where_, field_, "regex match failed: " + std::string(reinterpret_cast<char*>(msg)),
                    "input of " + num(static_cast<int64_t>(text.size())) + " bytes");
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    *start = ov[0];
    *end = ov[1];
    return true;
}

std::vector<Span> Regex::find_matches(std::string_view text) const {
    if (text.empty()) return {Span{0, 0, false}};
    std::vector<Span> out;
    size_t prev = 0, pos = 0;
    bool have_last = false;
    size_t last_match_end = 0;
    while (pos <= text.size()) {
        size_t s = 0, e = 0;
        if (!search(text, pos, &s, &e)) break;
        if (s == e && have_last && last_match_end == e) {
            // No empty match right after the previous one: step one character and retry.
            if (pos >= text.size()) break;
            size_t n = 1;
            const auto b = static_cast<unsigned char>(text[pos]);
            if (b >= 0xC0) n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            pos += n;
            continue;
        }
        if (prev != s) out.push_back({prev, s, false});
        out.push_back({s, e, true});
        prev = e;
        have_last = true;
        last_match_end = e;
        if (e == s) {
            if (e >= text.size()) break;
            pos = e;  // the retry above steps past it
        } else {
            pos = e;
        }
    }
    if (prev != text.size()) out.push_back({prev, text.size(), false});
    return out;
}

Pattern Pattern::literal(std::string s) {
    Pattern p;
    p.literal_ = std::move(s);
    return p;
}

Pattern Pattern::regex(std::string_view onig, const std::string& where, const std::string& field) {
    Pattern p;
    p.regex_ = std::make_shared<const Regex>(onig, where, field);
    return p;
}

std::vector<Span> Pattern::find_matches(std::string_view text) const {
    if (regex_) return regex_->find_matches(text);
    if (text.empty()) return {Span{0, 0, false}};
    if (literal_.empty()) return {Span{0, text.size(), false}};
    std::vector<Span> out;
    size_t prev = 0;
    for (size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, prev)) {
        if (at != prev) out.push_back({prev, at, false});
        out.push_back({at, at + literal_.size(), true});
        prev = at + literal_.size();
    }
    if (prev != text.size()) out.push_back({prev, text.size(), false});
    return out;
}

}  // namespace moe::text
