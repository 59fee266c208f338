// The tokenizer interface every model uses: text -> ids, ids -> text, and a display piece per
// token for the token strip. The built-in byte LM gets the byte tokenizer (one id per byte);
// a Hugging Face model gets its tokenizer.json (core/text/hf_tokenizer.h).
//
// Ids are int32 everywhere (vocabularies up to ~200k). Text is bytes: any byte string is valid
// input to a byte-level tokenizer; a tokenizer that needs UTF-8 throws moe::Error naming the
// byte offset of the first invalid sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

using TokenId = int32_t;

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // "byte" or "BPE (tokenizer.json)"-style one-line description for status bars.
    virtual std::string name() const = 0;
    virtual int32_t vocab_size() const = 0;  // ids are in [0, vocab_size())

    // add_special: the tokens the model's post-processor adds (BOS, templates); for the byte
    // tokenizer there are none.
    virtual std::vector<TokenId> encode(std::string_view text, bool add_special) const = 0;
    // skip_special: leave out special (added, special=true) tokens, as HF decode does.
    virtual std::string decode(std::span<const TokenId> ids, bool skip_special) const = 0;

    // The raw bytes one token stands for in the decoded text (for byte-level BPE the bytes
    // behind its unicode-mapped characters; for byte fallback <0xNN> the byte). Special tokens
    // give their content. Used for partial-UTF-8 display and for byte counts.
    virtual std::string token_bytes(TokenId id) const = 0;
    virtual bool is_special(TokenId id) const = 0;

    virtual std::optional<TokenId> bos_id() const { return std::nullopt; }
    virtual std::optional<TokenId> eos_id() const { return std::nullopt; }

    // One readable piece per token, for the token strip: whitespace made visible, a token that
    // holds only part of a UTF-8 character shows its bytes ("<E2 80>") and the token that
    // completes the character shows the character. Defined on top of token_bytes().
    std::vector<std::string> display_pieces(std::span<const TokenId> ids) const;
};

// One id per byte (vocab 256), ids = bytes; what the built-in model uses.
std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace moe
