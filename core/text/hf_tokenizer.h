// Hugging Face tokenizer.json, exact to the Rust `tokenizers` library for the stages listed
// in normalizers.h, pre_tokenizers.h, bpe.h, decoders.h and post_processors.h, plus added
// tokens (added_tokens.h). Anything else in a file is a moe::Error naming the file, the JSON
// path and the unsupported type: never a silent fallback that would give different ids.
//
// encode(text, add_special) is the library's encode(text, add_special_tokens). Loaded from a
// model folder, tokenizer_config.json adds what transformers adds on top: its bos/eos tokens,
// and with add_bos_token (add_eos_token) true a BOS (EOS) when the post-processor adds none.
#pragma once

#include <filesystem>
#include <memory>

#include "core/text/tokenizer.h"

namespace moe {

// path: a tokenizer.json, or a folder holding tokenizer.json (and maybe tokenizer_config.json).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& path);

}  // namespace moe
