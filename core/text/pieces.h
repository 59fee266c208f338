// The text between pipeline stages, as the tokenizers library's PreTokenizedString: a list of
// pieces, each either still text to split and tokenize, or already one added token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe::text {

struct Piece {
    std::string text;
    int32_t token = -1;      // >= 0: this piece is that added token, no stage touches it again
    bool at_origin = false;  // starts at byte 0 of the original text (Metaspace prepend "first")
};
using Pieces = std::vector<Piece>;

// Replaces every text piece by split(piece) (appended to out), keeps token pieces, drops empty
// pieces: PreTokenizedString::split.
template <class F>
void split_pieces(Pieces& pieces, F&& split) {
    Pieces out;
    out.reserve(pieces.size());
    for (Piece& p : pieces) {
        if (p.token >= 0) { out.push_back(std::move(p)); continue; }
        const size_t first = out.size();
        split(p, out);
        size_t w = first;
        for (size_t r = first; r < out.size(); ++r)
            if (out[r].token >= 0 || !out[r].text.empty()) {
                if (w != r) out[w] = std::move(out[r]);
                ++w;
            }
        out.resize(w);
    }
    pieces = std::move(out);
}

}  // namespace moe::text
