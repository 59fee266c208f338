// The parts of the tokenizer interface every tokenizer shares: display pieces for the token
// strip, and the byte tokenizer the built-in model uses.
#include "core/text/tokenizer.h"

#include <cstdio>

#include "core/error.h"
#include "core/text/utf8.h"

namespace moe {

namespace {

void append_hex_bytes(std::string& out, std::string_view bytes) {
    out += '<';
    for (size_t i = 0; i < bytes.size(); ++i) {
        char b[4];
        std::snprintf(b, sizeof b, "%s%02X", i ? " " : "", static_cast<unsigned char>(bytes[i]));
        out += b;
    }
    out += '>';
}

// Whitespace made visible; other control characters as their byte so nothing is invisible.
void append_visible(std::string& out, std::string_view ch) {
    if (ch.size() == 1) {
        switch (ch[0]) {
            case ' ': out += "\xE2\x90\xA3"; return;   // U+2423 open box
            case '\n': out += "\xE2\x86\xB5"; return;  // U+21B5 return arrow
            case '\t': out += "\xE2\x87\xA5"; return;  // U+21E5 tab arrow
            case '\r': out += "\xE2\x90\x8D"; return;  // U+240D CR symbol
            default:
                if (static_cast<unsigned char>(ch[0]) < 0x20 || ch[0] == 0x7F) { append_hex_bytes(out, ch); return; }
        }
    }
    out += ch;
}

}  // namespace

std::vector<std::string> Tokenizer::display_pieces(std::span<const TokenId> ids) const {
    std::vector<std::string> pieces;
    pieces.reserve(ids.size());
    std::string pending;  // bytes of an unfinished character, already shown by earlier tokens
    for (const TokenId id : ids) {
        std::string piece;
        // Real checkpoints pad their vocabulary past the tokenizer's (OLMoE 50304 vs 50280), and a
        // model may well predict such an id: it has no text, so it shows as its number.
        if (id < 0 || id >= vocab_size()) {
            pending.clear();
            piece = '<';  // built by appends: GCC 12's -Wrestrict misfires on "<" + std::string
            piece += std::to_string(id);
            piece += '>';
            pieces.push_back(std::move(piece));
            continue;
        }
        if (is_special(id)) {
            pending.clear();
            pieces.push_back(token_bytes(id));
            continue;
        }
        const std::string own = token_bytes(id);
        std::string buf = pending + own;
        size_t i = 0;
        if (!pending.empty() && utf8::incomplete_tail(buf) == buf.size()) {
            // Still not complete (a 4-byte character over three tokens): this token's bytes too.
            if (!own.empty()) append_hex_bytes(piece, own);
            pending = buf;
            pieces.push_back(std::move(piece));
            continue;
        }
        // Pending bytes that this token does not complete were shown already: drop them.
        if (!pending.empty() && utf8::valid_seq_len(buf, 0) == 0) buf = own;
        pending.clear();
        const size_t tail = utf8::incomplete_tail(buf);
        const size_t body = buf.size() - tail;
        while (i < body) {
            const size_t n = utf8::valid_seq_len(buf, i);
            if (n == 0 || i + n > body) {
                // A byte that can never start a character here: show it as its byte.
                size_t j = i + 1;
                while (j < body && utf8::valid_seq_len(buf, j) == 0) ++j;
                append_hex_bytes(piece, std::string_view(buf).substr(i, j - i));
                i = j;
                continue;
            }
            append_visible(piece, std::string_view(buf).substr(i, n));
            i += n;
        }
        if (tail > 0) {
            append_hex_bytes(piece, std::string_view(buf).substr(body));
            pending = buf.substr(body);
        }
        pieces.push_back(std::move(piece));
    }
    return pieces;
}

namespace {

class ByteTokenizer final : public Tokenizer {
public:
    std::string name() const override { return "byte"; }
    int32_t vocab_size() const override { return 256; }
    std::vector<TokenId> encode(std::string_view text, bool /*add_special*/) const override {
        std::vector<TokenId> ids(text.size());
        for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
        return ids;
    }
    std::string decode(std::span<const TokenId> ids, bool /*skip_special*/) const override {
        std::string out(ids.size(), '\0');
        for (size_t i = 0; i < ids.size(); ++i) {
            check(ids[i]);
            out[i] = static_cast<char>(ids[i]);
        }
        return out;
    }
    std::string token_bytes(TokenId id) const override {
        check(id);
        return std::string(1, static_cast<char>(id));
    }
    bool is_special(TokenId /*id*/) const override { return false; }

private:
    static void check(TokenId id) {
        if (id < 0 || id > 255)
            throw Error("byte tokenizer", "token id", "id " + num(id) + " is out of range", "byte ids are 0..255");
    }
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer() { return std::make_unique<ByteTokenizer>(); }

}  // namespace moe
