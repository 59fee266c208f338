// Added tokens (tokenizers/src/tokenizer/added_vocabulary.rs): the text is cut on them before
// anything else, leftmost-longest, first on the raw text for tokens with normalized=false,
// then on each normalized piece for the others; lstrip/rstrip take the whitespace next to a
// token into it, single_word only matches a token that is not inside a word.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/text/pieces.h"

namespace moe::text {

struct AddedToken {
    std::string content;
    int32_t id = -1;
    bool special = false, normalized = true, lstrip = false, rstrip = false, single_word = false;
    std::string match;  // what is searched for: content, or content normalized for normalized tokens
};

class AddedVocabulary {
public:
    void set(std::vector<AddedToken> tokens);
    const std::vector<AddedToken>& tokens() const { return tokens_; }
    const AddedToken* by_id(int32_t id) const;

    // Splits every text piece on the tokens with normalized == want_normalized.
    void split(Pieces& pieces, bool want_normalized) const;

private:
    struct Matcher {
        std::array<std::vector<size_t>, 256> by_first;  // token indices, longest first
        bool empty = true;
    };
    void find(const Matcher& m, const Piece& p, Pieces& out) const;

    std::vector<AddedToken> tokens_;
    std::vector<int32_t> index_by_id_;  // id -> index in tokens_, -1 for none
    Matcher raw_, normalized_;
};

}  // namespace moe::text
