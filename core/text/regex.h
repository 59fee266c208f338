// Regular expressions with the semantics the Rust tokenizers library gets from Oniguruma,
// on PCRE2 (UTF + UCP, JIT-compiled). The pattern is translated where the two engines differ:
// Oniguruma's \s is the Unicode White_Space property (PCRE2's also takes U+180E), its \w is
// Unicode "word" (Alphabetic, marks, Nd, Pc, Join_Control).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::text {

// A piece of a string, [start, end) in bytes; is_match says whether the pattern matched it.
struct Span {
    size_t start = 0, end = 0;
    bool is_match = false;
};

class Regex {
public:
    // where/field name the pattern's origin for errors (file, JSON path).
    Regex(std::string_view onig_pattern, const std::string& where, const std::string& field);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // The tokenizers library's Pattern::find_matches: the text cut into matched and unmatched
    // spans covering it, in order ((0,0) unmatched for an empty text). Empty matches are
    // skipped the way onig's find_iter does (no empty match right after the previous match).
    std::vector<Span> find_matches(std::string_view text) const;

    // The first match at or after byte `from`: true and [*start, *end) if there is one.
    bool search(std::string_view text, size_t from, size_t* start, size_t* end) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string where_, field_;
};

// A tokenizer.json pattern: {"String": s} (a literal, found left to right without overlap, as
// the library's escaped regex does) or {"Regex": r}.
class Pattern {
public:
    static Pattern literal(std::string s);
    static Pattern regex(std::string_view onig, const std::string& where, const std::string& field);
    std::vector<Span> find_matches(std::string_view text) const;

private:
    std::string literal_;
    std::shared_ptr<const Regex> regex_;
};

// Oniguruma pattern -> PCRE2 pattern (exposed for tests).
std::string onig_to_pcre2(std::string_view pattern, const std::string& where, const std::string& field);

}  // namespace moe::text
