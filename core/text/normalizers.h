// Normalizers (tokenizers/src/normalizers): text -> text before pre-tokenization, applied to
// each piece between added tokens. Sequence, NFC/NFKC/NFD/NFKD (utf8proc), Prepend, Replace,
// Lowercase, Strip.
#pragma once

#include <memory>
#include <string>

#include "core/text/json_at.h"
#include "core/text/regex.h"

namespace moe::text {

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::string& s) const = 0;  // s is valid UTF-8
};

// A {"String"|"Regex"} pattern object at at.pattern (Replace, Split).
Pattern parse_pattern(const JsonAt& at);

// null -> nullptr; an unsupported type throws naming the JSON path.
std::unique_ptr<Normalizer> parse_normalizer(const JsonAt& at);

}  // namespace moe::text
