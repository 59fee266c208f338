// A small XML well-formedness checker for the exporters' SVG (no XML library is a dependency):
// one root element, balanced tags, quoted attributes without '<', valid entity references, no
// control characters, valid UTF-8. It is strict enough to catch what a broken writer produces.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace moe::test {

inline bool xml_valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (n == 0 || (n == 2 && c < 0xC2) || i + n > s.size()) return false;
        for (int j = 1; j < n; ++j)
            if ((static_cast<unsigned char>(s[i + j]) & 0xC0) != 0x80) return false;
        if (n == 1 && c < 0x20 && c != '\n' && c != '\t' && c != '\r') return false;
        i += n;
    }
    return true;
}

// Checks "&...;" at s[i]; returns its length or 0.
inline size_t xml_entity(std::string_view s, size_t i) {
    const size_t end = s.find(';', i);
    if (end == std::string_view::npos || end - i > 10) return 0;
    const std::string_view name = s.substr(i + 1, end - i - 1);
    if (name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos") return end - i + 1;
    if (name.size() >= 2 && name[0] == '#') {
        const bool hex = name[1] == 'x';
        for (size_t k = hex ? 2 : 1; k < name.size(); ++k)
            if (!(hex ? std::isxdigit(static_cast<unsigned char>(name[k])) : std::isdigit(static_cast<unsigned char>(name[k])))) return 0;
        return name.size() > (hex ? 2u : 1u) ? end - i + 1 : 0;
    }
    return 0;
}

inline bool xml_name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' || c == '.';
}

inline bool xml_well_formed(std::string_view s, std::string* why) {
    const auto bad = [&](const std::string& w, size_t at) {
        if (why) *why = w + " at byte " + std::to_string(at);
        return false;
    };
    if (!xml_valid_utf8(s)) return bad("invalid UTF-8 or control character", 0);
    std::vector<std::string> stack;
    bool seen_root = false;
    size_t i = 0;
    while (i < s.size()) {
        if (s[i] == '&') {
            const size_t n = xml_entity(s, i);
            if (n == 0) return bad("bad entity", i);
            i += n;
            continue;
        }
        if (s[i] != '<') {
            if (stack.empty() && !std::isspace(static_cast<unsigned char>(s[i]))) return bad("text outside the root", i);
            ++i;
            continue;
        }
        if (s.substr(i, 5) == "<?xml") {
            const size_t e = s.find("?>", i);
            if (e == std::string_view::npos || i != 0) return bad("bad XML declaration", i);
            i = e + 2;
            continue;
        }
        if (s.substr(i, 4) == "<!--") {
            const size_t e = s.find("-->", i);
            if (e == std::string_view::npos) return bad("unterminated comment", i);
            i = e + 3;
            continue;
        }
        const bool closing = i + 1 < s.size() && s[i + 1] == '/';
        size_t j = i + (closing ? 2 : 1);
        const size_t name_begin = j;
        while (j < s.size() && xml_name_char(s[j])) ++j;
        const std::string name(s.substr(name_begin, j - name_begin));
        if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return bad("bad tag name", i);
        if (closing) {
            while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
            if (j >= s.size() || s[j] != '>') return bad("bad closing tag", i);
            if (stack.empty() || stack.back() != name) return bad("mismatched </" + name + ">", i);
            stack.pop_back();
            i = j + 1;
            continue;
        }
        // Attributes: name="value" or name='value'.
        bool self_closing = false;
        for (;;) {
            while (j < s.size() && std::isspace(static_cast<unsigned char>(s[j]))) ++j;
            if (j >= s.size()) return bad("unterminated tag", i);
            if (s[j] == '>') { ++j; break; }
            if (s[j] == '/' && j + 1 < s.size() && s[j + 1] == '>') { self_closing = true; j += 2; break; }
            const size_t a = j;
            while (j < s.size() && xml_name_char(s[j])) ++j;
            if (j == a || j >= s.size() || s[j] != '=') return bad("bad attribute", j);
            ++j;
            if (j >= s.size() || (s[j] != '"' && s[j] != '\'')) return bad("unquoted attribute", j);
            const char q = s[j++];
            while (j < s.size() && s[j] != q) {
                if (s[j] == '<') return bad("'<' in an attribute", j);
                if (s[j] == '&') {
                    const size_t n = xml_entity(s, j);
                    if (n == 0) return bad("bad entity in an attribute", j);
                    j += n;
                } else {
                    ++j;
                }
            }
            if (j >= s.size()) return bad("unterminated attribute", a);
            ++j;
        }
        if (stack.empty()) {
            if (seen_root) return bad("second root element", i);
            seen_root = true;
        }
        if (!self_closing) stack.push_back(name);
        i = j;
    }
    if (!stack.empty()) return bad("unclosed <" + stack.back() + ">", s.size());
    if (!seen_root) return bad("no root element", 0);
    return true;
}

}  // namespace moe::test
