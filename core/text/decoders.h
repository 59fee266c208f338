// Decoders (tokenizers/src/decoders): token strings -> text. ByteLevel, Replace, ByteFallback,
// Fuse, Strip, Metaspace, Sequence. decode_chain works on the list of token strings exactly as
// the library's Decoder::decode_chain; the text is the concatenation of what it returns.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/text/json_at.h"

namespace moe::text {

class Decoder {
public:
    virtual ~Decoder() = default;
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
    // The bytes one token stands for, before any joining or lossy UTF-8 repair (for display
    // and byte counts): ByteLevel maps its alphabet back, ByteFallback its <0xNN>, Replace
    // and Metaspace their characters; Fuse and Strip only act across tokens.
    virtual void raw_bytes(std::string& token) const = 0;
};

std::unique_ptr<Decoder> parse_decoder(const JsonAt& at);

}  // namespace moe::text
