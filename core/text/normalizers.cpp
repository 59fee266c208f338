#include "core/text/normalizers.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "core/text/regex.h"
#include "core/text/utf8.h"

namespace moe::text {

namespace {

class SequenceNormalizer final : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> s) : stages_(std::move(s)) {}
    void normalize(std::string& s) const override {
        for (const auto& n : stages_) n->normalize(s);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> stages_;
};

class UnicodeNormalizer final : public Normalizer {
public:
    explicit UnicodeNormalizer(utf8proc_option_t opts) : opts_(opts) {}
    void normalize(std::string& s) const override {
        if (s.empty()) return;
        // Pure ASCII is already in every normal form: skip the copy.
        bool ascii = true;
        for (const char c : s) if (static_cast<unsigned char>(c) >= 0x80) { ascii = false; break; }
        if (ascii) return;
        utf8proc_uint8_t* out = nullptr;
        const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                                static_cast<utf8proc_ssize_t>(s.size()), &out,
                                                static_cast<utf8proc_option_t>(opts_ | UTF8PROC_STABLE));
        MOE_ASSERT(n >= 0, "utf8proc_map failed on text that was checked to be valid UTF-8");
        s.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
        std::free(out);
    }

private:
    utf8proc_option_t opts_;
};

class PrependNormalizer final : public Normalizer {
public:
    explicit PrependNormalizer(std::string p) : prefix_(std::move(p)) {}
    void normalize(std::string& s) const override {
        if (!s.empty()) s.insert(0, prefix_);
    }

private:
    std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
public:
    ReplaceNormalizer(Pattern p, std::string content) : pattern_(std::move(p)), content_(std::move(content)) {}
    void normalize(std::string& s) const override {
        std::string out;
        out.reserve(s.size());
        for (const Span& sp : pattern_.find_matches(s)) {
            if (sp.is_match) out += content_;
            else out.append(s, sp.start, sp.end - sp.start);
        }
        s = std::move(out);
    }

private:
    Pattern pattern_;
    std::string content_;
};

// Rust's char::to_lowercase, one character at a time (so no final-sigma context, as the
// library's NormalizedString::lowercase): utf8proc's simple mapping plus the one
// unconditional multi-character lowercase mapping in SpecialCasing.txt (U+0130).
class LowercaseNormalizer final : public Normalizer {
public:
    void normalize(std::string& s) const override {
        std::string out;
        out.reserve(s.size());
        size_t i = 0;
        while (i < s.size()) {
            const char32_t cp = utf8::next(s, i);
            if (cp == 0x130) { out += "i\xCC\x87"; continue; }
            utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))));
        }
        s = std::move(out);
    }
};


class StripNormalizer final : public Normalizer {
public:
    StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
    void normalize(std::string& s) const override {
        size_t b = 0, e = s.size();
        if (left_) {
            while (b < e) {
                size_t i = b;
                if (!utf8::is_white_space(utf8::next(s, i))) break;
                b = i;
            }
        }
        if (right_) {
            while (e > b) {
                size_t start = e - 1;
                while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
                size_t i = start;
                if (!utf8::is_white_space(utf8::next(s, i))) break;
                e = start;
            }
        }
        s = s.substr(b, e - b);
    }

private:
    bool left_, right_;
};

}  // namespace

Pattern parse_pattern(const JsonAt& at) {
    const JsonAt p = at.child("pattern");
    p.require_object();
    if (p.has("String")) return Pattern::literal(p.str("String"));
    if (p.has("Regex")) return Pattern::regex(p.str("Regex"), p.file, p.path + ".Regex");
    p.fail("has neither \"String\" nor \"Regex\"", "a pattern is {\"String\": s} or {\"Regex\": r}");
}

std::unique_ptr<Normalizer> parse_normalizer(const JsonAt& at) {
    if (at.j.is_null()) return nullptr;
    const std::string t = at.type();
    if (t == "Sequence") {
        std::vector<std::unique_ptr<Normalizer>> stages;
        const auto& arr = at.array("normalizers");
        const JsonAt list = at.child("normalizers");
        for (size_t i = 0; i < arr.size(); ++i)
            if (auto n = parse_normalizer(list.at(i))) stages.push_back(std::move(n));
        return std::make_unique<SequenceNormalizer>(std::move(stages));
    }
    if (t == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE);
    if (t == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
    if (t == "NFKC") return std::make_unique<UnicodeNormalizer>(static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    if (t == "NFKD") return std::make_unique<UnicodeNormalizer>(static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
    if (t == "Prepend") return std::make_unique<PrependNormalizer>(at.str("prepend"));
    if (t == "Replace") return std::make_unique<ReplaceNormalizer>(parse_pattern(at), at.str("content"));
    if (t == "Lowercase") return std::make_unique<LowercaseNormalizer>();
    if (t == "Strip") return std::make_unique<StripNormalizer>(at.boolean_or("strip_left", true), at.boolean_or("strip_right", true));
    at.unsupported("normalizer", "Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip");
}

}  // namespace moe::text
