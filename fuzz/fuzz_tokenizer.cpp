// tokenizer.json + text (split at fuzz_util.h's separator line) -> load_hf_tokenizer, then
// encode with and without special tokens, decode, token bytes and display pieces.
#include <fstream>

#include "core/text/hf_tokenizer.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::pair<std::string_view, std::string_view> parts = moe::fuzz::split2(moe::fuzz::as_text(data, size));
    const std::string_view json = parts.first, text = parts.second;  // (clang 14 lambdas cannot capture bindings)
    const std::filesystem::path path = moe::fuzz::scratch_dir() / "tokenizer.json";
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(json.data(), static_cast<std::streamsize>(json.size()));
    }
    return moe::fuzz::run_one([&] {
        const std::unique_ptr<moe::Tokenizer> tok = moe::load_hf_tokenizer(path);
        for (const bool special : {false, true}) {
            const std::vector<moe::TokenId> ids = tok->encode(text, special);
            for (const moe::TokenId id : ids)
                if (id < 0 || id >= tok->vocab_size()) moe::fuzz::fail("encode gave an id outside the vocabulary");
            (void)tok->decode(ids, !special);
            (void)tok->display_pieces(ids);
            for (const moe::TokenId id : ids) (void)tok->token_bytes(id);
        }
    });
}
