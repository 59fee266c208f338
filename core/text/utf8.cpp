#include "core/text/utf8.h"

#include <utf8proc.h>

#include "core/error.h"

namespace moe::utf8 {

namespace {
// The second byte's allowed range depends on the lead byte (Unicode Table 3-7): this is what
// excludes overlongs, surrogates and code points past U+10FFFF.
bool second_ok(unsigned char lead, unsigned char b) {
    switch (lead) {
        case 0xE0: return b >= 0xA0 && b <= 0xBF;
        case 0xED: return b >= 0x80 && b <= 0x9F;
        case 0xF0: return b >= 0x90 && b <= 0xBF;
        case 0xF4: return b >= 0x80 && b <= 0x8F;
        default: return b >= 0x80 && b <= 0xBF;
    }
}
size_t expected_len(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}
// How many bytes from s[i] form a valid prefix of a sequence (at most its full length).
size_t valid_prefix(std::string_view s, size_t i, size_t& need) {
    const auto lead = static_cast<unsigned char>(s[i]);
    need = expected_len(lead);
    if (need == 0) return 0;
    size_t k = 1;
    while (k < need && i + k < s.size()) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (k == 1 ? !second_ok(lead, b) : (b < 0x80 || b > 0xBF)) break;
        ++k;
    }
    return k;
}
}  // namespace

size_t valid_seq_len(std::string_view s, size_t i) {
    size_t need = 0;
    const size_t k = valid_prefix(s, i, need);
    return k == need ? need : 0;
}

size_t first_invalid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
        const size_t n = valid_seq_len(s, i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

void require_valid(std::string_view s, const std::string& where) {
    const size_t bad = first_invalid(s);
    if (bad == std::string_view::npos) return;
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(s[bad]));
    throw Error(where, "text", "invalid UTF-8 at byte offset " + num(static_cast<int64_t>(bad)) + " (byte " + hex + ")",
                "this tokenizer needs UTF-8 text; only byte-level tokenizers take any bytes");
}

char32_t next(std::string_view s, size_t& i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) { ++i; return b0; }
    const size_t n = expected_len(b0);
    char32_t cp = b0 & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    return cp;
}

void append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        if (static_cast<unsigned char>(s[i]) < 0x80) { out += s[i++]; continue; }
        size_t need = 0;
        const size_t k = valid_prefix(s, i, need);
        if (need != 0 && k == need) {
            out.append(s.substr(i, k));
            i += k;
        } else {
            out += "\xEF\xBF\xBD";  // one U+FFFD for the maximal invalid prefix (at least 1 byte)
            i += k == 0 ? 1 : k;
        }
    }
    return out;
}

bool is_white_space(char32_t cp) {
    // White_Space is exactly these controls plus the separators Zs, Zl and Zp.
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;
    const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

size_t incomplete_tail(std::string_view s) {
    // A sequence is at most 4 bytes: look back at most 3 for its lead.
    for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
        const size_t i = s.size() - back;
        const auto b = static_cast<unsigned char>(s[i]);
        if (b >= 0x80 && b < 0xC0) continue;  // continuation byte: keep looking for the lead
        size_t need = 0;
        const size_t k = valid_prefix(s, i, need);
        return (need > back && k == back) ? back : 0;
    }
    return 0;
}

}  // namespace moe::utf8
