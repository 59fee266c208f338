// Errors by layer (STYLE.md §9).
//   - Programmer errors (a broken invariant inside moelab) assert with a reason: MOE_ASSERT.
//   - Anything read from outside (files, arguments, typed text, knob values) throws moe::Error,
//     which names where (file or command), what (field or knob), the bad value and a hint.
//     The GUI catches it and shows it without closing; the CLI prints it and exits non-zero.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace moe {

// Values inside error messages: integers as they are, reals with %g ("0.001", "1e+30").
inline std::string num(int64_t v) { return std::to_string(v); }
inline std::string fnum(double v) {
    char b[64];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
}

class Error : public std::runtime_error {
public:
    // where: file path or "RouterConfig" / "moelab-cli route"; field: the field, key or knob;
    // problem: what is wrong, with the bad value; hint: what was expected or how to fix it.
    Error(std::string where, std::string field, std::string problem, std::string hint = {})
        : std::runtime_error(compose(where, field, problem, hint)),
          where_(std::move(where)), field_(std::move(field)),
          problem_(std::move(problem)), hint_(std::move(hint)) {}

    const std::string& where() const { return where_; }
    const std::string& field() const { return field_; }
    const std::string& problem() const { return problem_; }
    const std::string& hint() const { return hint_; }

private:
    static std::string compose(const std::string& where, const std::string& field,
                               const std::string& problem, const std::string& hint) {
        std::string s = where;
        if (!field.empty()) s += (s.empty() ? "" : ": ") + field;
        s += (s.empty() ? "" : ": ") + problem;
        if (!hint.empty()) s += " (" + hint + ")";
        return s;
    }
    std::string where_, field_, problem_, hint_;
};

}  // namespace moe

// An invariant of moelab's own code; never used for input from outside.
#define MOE_ASSERT(cond, reason)                                                          \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "%s:%d: assertion '%s' failed: %s\n", __FILE__, __LINE__, \
                         #cond, reason);                                                  \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)
