#include "core/text/pre_tokenizers.h"

#include <utf8proc.h>

#include <array>
#include <vector>

#include "core/text/regex.h"
#include "core/text/normalizers.h"
#include "core/text/utf8.h"

namespace moe::text {

namespace {

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const JsonAt& at) {
    const std::string b = at.str("behavior");
    if (b == "Removed") return Behavior::Removed;
    if (b == "Isolated") return Behavior::Isolated;
    if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
    if (b == "MergedWithNext") return Behavior::MergedWithNext;
    if (b == "Contiguous") return Behavior::Contiguous;
    at.child("behavior").fail("unsupported split behavior '" + b + "'",
                              "Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

// NormalizedString::split: the spans of one piece regrouped by the behavior, then cut out.
void split_by(const Piece& p, std::vector<Span> m, Behavior behavior, Pieces& out) {
    struct Cut { size_t start, end; bool remove; };
    std::vector<Cut> cuts;
    cuts.reserve(m.size());
    switch (behavior) {
        case Behavior::Isolated:
            for (const Span& s : m) cuts.push_back({s.start, s.end, false});
            break;
        case Behavior::Removed:
            for (const Span& s : m) cuts.push_back({s.start, s.end, s.is_match});
            break;
        case Behavior::Contiguous: {
            bool prev = false;
            for (const Span& s : m) {
                if (s.is_match == prev && !cuts.empty()) cuts.back().end = s.end;
                else cuts.push_back({s.start, s.end, false});
                prev = s.is_match;
            }
            break;
        }
        case Behavior::MergedWithPrevious: {
            bool prev = false;
            for (const Span& s : m) {
                if (s.is_match && !prev && !cuts.empty()) cuts.back().end = s.end;
                else cuts.push_back({s.start, s.end, false});
                prev = s.is_match;
            }
            break;
        }
        case Behavior::MergedWithNext: {
            bool prev = false;
            for (size_t k = m.size(); k-- > 0;) {
                const Span& s = m[k];
                if (s.is_match && !prev && !cuts.empty()) cuts.back().start = s.start;
                else cuts.push_back({s.start, s.end, false});
                prev = s.is_match;
            }
            std::reverse(cuts.begin(), cuts.end());
            break;
        }
    }
    for (const Cut& c : cuts) {
        if (c.remove) continue;
        out.push_back({p.text.substr(c.start, c.end - c.start), -1, p.at_origin && c.start == 0});
    }
}

std::vector<Span> invert(std::vector<Span> m) {
    for (Span& s : m) s.is_match = !s.is_match;
    return m;
}

// Pattern::find_matches for a character predicate (each matching character is one match).
template <class Pred>
std::vector<Span> char_matches(std::string_view s, Pred pred) {
    if (s.empty()) return {Span{0, 0, false}};
    std::vector<Span> out;
    size_t last = 0, i = 0;
    while (i < s.size()) {
        const size_t b = i;
        const char32_t cp = utf8::next(s, i);
        if (pred(cp)) {
            if (last < b) out.push_back({last, b, false});
            out.push_back({b, i, true});
            last = i;
        }
    }
    if (s.size() > last) out.push_back({last, s.size(), false});
    return out;
}

class SequencePre final : public PreTokenizer {
public:
    explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> s) : stages_(std::move(s)) {}
    void pre_tokenize(Pieces& p) const override {
        for (const auto& st : stages_) st->pre_tokenize(p);
    }
    bool byte_level() const override {
        for (const auto& st : stages_) if (st->byte_level()) return true;
        return false;
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

class SplitPre final : public PreTokenizer {
public:
    SplitPre(Pattern p, Behavior b, bool inv) : pattern_(std::move(p)), behavior_(b), invert_(inv) {}
    void pre_tokenize(Pieces& pieces) const override {
        split_pieces(pieces, [&](const Piece& p, Pieces& out) {
            std::vector<Span> m = pattern_.find_matches(p.text);
            split_by(p, invert_ ? invert(std::move(m)) : std::move(m), behavior_, out);
        });
    }

private:
    Pattern pattern_;
    Behavior behavior_;
    bool invert_;
};

// GPT-2's pattern, which ByteLevel uses when use_regex is on.
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct ByteAlphabet {
    std::array<std::string, 256> chars;
    std::array<int16_t, 512> bytes{};  // code point (all < 512) -> byte
    ByteAlphabet() {
        bytes.fill(-1);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const char32_t cp = keep ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
            utf8::append(chars[b], cp);
            bytes[cp] = static_cast<int16_t>(b);
        }
    }
};
const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

class ByteLevelPre final : public PreTokenizer {
public:
    ByteLevelPre(bool add_prefix_space, bool use_regex, const std::string& file, const std::string& path)
        : add_prefix_space_(add_prefix_space) {
        if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, file, path + " (ByteLevel's GPT-2 regex)");
    }
    void pre_tokenize(Pieces& pieces) const override {
        const ByteAlphabet& a = alphabet();
        split_pieces(pieces, [&](Piece& p, Pieces& out) {
            if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) {
                std::string spaced(1, ' ');
                spaced += p.text;
                p.text = std::move(spaced);
            }
            const size_t first = out.size();
            if (regex_) split_by(p, regex_->find_matches(p.text), Behavior::Isolated, out);
            else out.push_back(std::move(p));
            for (size_t k = first; k < out.size(); ++k) {
                std::string mapped;
                mapped.reserve(out[k].text.size() * 2);
                for (const char c : out[k].text) mapped += a.chars[static_cast<unsigned char>(c)];
                out[k].text = std::move(mapped);
            }
        });
    }
    bool byte_level() const override { return true; }

private:
    bool add_prefix_space_;
    std::unique_ptr<Regex> regex_;
};

class MetaspacePre final : public PreTokenizer {
public:
    enum class Prepend { Always, First, Never };
    MetaspacePre(std::string replacement, Prepend scheme, bool split)
        : rep_(std::move(replacement)), scheme_(scheme), split_(split) {}
    void pre_tokenize(Pieces& pieces) const override {
        split_pieces(pieces, [&](Piece& p, Pieces& out) {
            std::string s;
            s.reserve(p.text.size() + rep_.size());
            for (const char c : p.text) {
                if (c == ' ') s += rep_;
                else s += c;
            }
            const bool starts = s.compare(0, rep_.size(), rep_) == 0;
            if (!starts && (scheme_ == Prepend::Always || (scheme_ == Prepend::First && p.at_origin)))
                s.insert(0, rep_);
            p.text = std::move(s);
            if (!split_) { out.push_back(std::move(p)); return; }
            std::vector<Span> m = Pattern::literal(rep_).find_matches(p.text);
            split_by(p, std::move(m), Behavior::MergedWithNext, out);
        });
    }

private:
    std::string rep_;
    Prepend scheme_;
    bool split_;
};

bool is_numeric(char32_t cp) {
    const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

class DigitsPre final : public PreTokenizer {
public:
    explicit DigitsPre(bool individual) : individual_(individual) {}
    void pre_tokenize(Pieces& pieces) const override {
        split_pieces(pieces, [&](const Piece& p, Pieces& out) {
            split_by(p, char_matches(p.text, is_numeric), individual_ ? Behavior::Isolated : Behavior::Contiguous, out);
        });
    }

private:
    bool individual_;
};

class WhitespacePre final : public PreTokenizer {
public:
    WhitespacePre(const std::string& file, const std::string& path) : regex_(R"(\w+|[^\w\s]+)", file, path) {}
    void pre_tokenize(Pieces& pieces) const override {
        split_pieces(pieces, [&](const Piece& p, Pieces& out) {
            split_by(p, invert(regex_.find_matches(p.text)), Behavior::Removed, out);
        });
    }

private:
    Regex regex_;
};

class WhitespaceSplitPre final : public PreTokenizer {
public:
    void pre_tokenize(Pieces& pieces) const override {
        split_pieces(pieces, [&](const Piece& p, Pieces& out) {
            split_by(p, char_matches(p.text, utf8::is_white_space), Behavior::Removed, out);
        });
    }
};

}  // namespace

const std::string& byte_level_char(unsigned char b) { return alphabet().chars[b]; }
int byte_level_byte(char32_t cp) { return cp < 512 ? alphabet().bytes[cp] : -1; }

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const JsonAt& at) {
    if (at.j.is_null()) return nullptr;
    const std::string t = at.type();
    if (t == "Sequence") {
        std::vector<std::unique_ptr<PreTokenizer>> stages;
        const auto& arr = at.array("pretokenizers");
        const JsonAt list = at.child("pretokenizers");
        for (size_t i = 0; i < arr.size(); ++i) {
            auto st = parse_pre_tokenizer(list.at(i));
            if (!st) continue;
            // Stages after ByteLevel would see its alphabet, not the text: no file does this.
            if (!stages.empty() && stages.back()->byte_level())
                list.at(i).fail("comes after a ByteLevel pre-tokenizer", "moelab supports ByteLevel only as the last stage");
            stages.push_back(std::move(st));
        }
        return std::make_unique<SequencePre>(std::move(stages));
    }
    if (t == "Split")
        return std::make_unique<SplitPre>(parse_pattern(at), parse_behavior(at), at.boolean_or("invert", false));
    if (t == "ByteLevel")
        return std::make_unique<ByteLevelPre>(at.boolean_or("add_prefix_space", true), at.boolean_or("use_regex", true),
                                              at.file, at.path);
    if (t == "Metaspace") {
        const std::string rep = at.str_or("replacement", "\xE2\x96\x81");
        if (utf8::first_invalid(rep) != std::string::npos || rep.empty())
            at.child("replacement").fail("is not one character");
        MetaspacePre::Prepend scheme = MetaspacePre::Prepend::Always;
        if (at.has("prepend_scheme")) {
            const std::string s = at.str("prepend_scheme");
            if (s == "always") scheme = MetaspacePre::Prepend::Always;
            else if (s == "first") scheme = MetaspacePre::Prepend::First;
            else if (s == "never") scheme = MetaspacePre::Prepend::Never;
            else at.child("prepend_scheme").fail("unsupported value '" + s + "'", "always, first or never");
        } else if (at.has("add_prefix_space")) {
            scheme = at.boolean_or("add_prefix_space", true) ? MetaspacePre::Prepend::Always : MetaspacePre::Prepend::Never;
        }
        return std::make_unique<MetaspacePre>(rep, scheme, at.boolean_or("split", true));
    }
    if (t == "Digits") return std::make_unique<DigitsPre>(at.boolean_or("individual_digits", false));
    if (t == "Whitespace") return std::make_unique<WhitespacePre>(at.file, at.path);
    if (t == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPre>();
    at.unsupported("pre-tokenizer", "Sequence, Split, ByteLevel, Metaspace, Digits, Whitespace, WhitespaceSplit");
}

}  // namespace moe::text
