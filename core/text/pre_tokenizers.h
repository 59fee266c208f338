// Pre-tokenizers (tokenizers/src/pre_tokenizers): cut each text piece into the words the model
// tokenizes alone. Sequence, Split (regex or string, every SplitDelimiterBehavior, invert),
// ByteLevel (its GPT-2 regex optional, add_prefix_space), Metaspace, Digits, Whitespace,
// WhitespaceSplit.
#pragma once

#include <memory>

#include "core/text/json_at.h"
#include "core/text/pieces.h"

namespace moe::text {

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    virtual void pre_tokenize(Pieces& pieces) const = 0;
    // True when this stage maps bytes to the ByteLevel alphabet (so any bytes are valid input).
    virtual bool byte_level() const { return false; }
};

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const JsonAt& at);

// The ByteLevel alphabet (GPT-2's bytes_to_unicode): byte -> its character's UTF-8, and back
// (-1 for a character outside the alphabet).
const std::string& byte_level_char(unsigned char b);
int byte_level_byte(char32_t cp);

}  // namespace moe::text
