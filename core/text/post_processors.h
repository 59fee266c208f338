// Post-processors (tokenizers/src/processors): what encode adds when asked for special
// tokens. TemplateProcessing (single sequence), ByteLevel (ids unchanged: it only trims
// offsets), Sequence.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/text/json_at.h"

namespace moe::text {

class PostProcessor {
public:
    virtual ~PostProcessor() = default;
    virtual void process(std::vector<int32_t>& ids) const = 0;  // only called with add_special
    virtual bool adds_tokens() const = 0;
};

std::unique_ptr<PostProcessor> parse_post_processor(const JsonAt& at);

}  // namespace moe::text
