#include "core/text/decoders.h"

#include "core/text/normalizers.h"
#include "core/text/pre_tokenizers.h"
#include "core/text/regex.h"
#include "core/text/utf8.h"

namespace moe::text {

namespace {

// A ByteLevel token back to bytes; a token with any character outside the alphabet (an added
// token such as "<|im_start|>" written in plain text) is taken as its own UTF-8.
bool byte_level_bytes(const std::string& t, std::string& out) {
    const size_t mark = out.size();
    size_t i = 0;
    while (i < t.size()) {
        if (utf8::valid_seq_len(t, i) == 0) { out.resize(mark); return false; }
        const int b = byte_level_byte(utf8::next(t, i));
        if (b < 0) { out.resize(mark); return false; }
        out += static_cast<char>(b);
    }
    return true;
}

class ByteLevelDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string bytes;
        for (const std::string& t : tokens)
            if (!byte_level_bytes(t, bytes)) bytes += t;
        tokens.assign(1, utf8::lossy(bytes));
    }
    void raw_bytes(std::string& token) const override {
        std::string b;
        if (byte_level_bytes(token, b)) token = std::move(b);
    }
};

class ReplaceDecoder final : public Decoder {
public:
    ReplaceDecoder(Pattern p, std::string content) : pattern_(std::move(p)), content_(std::move(content)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (std::string& t : tokens) raw_bytes(t);
    }
    void raw_bytes(std::string& t) const override {
        std::string out;
        for (const Span& s : pattern_.find_matches(t)) {
            if (s.is_match) out += content_;
            else out.append(t, s.start, s.end - s.start);
        }
        t = std::move(out);
    }

private:
    Pattern pattern_;
    std::string content_;
};

int byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    const int h = hex(t[3]), l = hex(t[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

class ByteFallbackDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::vector<std::string> out;
        out.reserve(tokens.size());
        std::string bytes;
        auto flush = [&] {
            if (bytes.empty()) return;
            if (utf8::first_invalid(bytes) == std::string::npos) out.push_back(bytes);
            else for (size_t k = 0; k < bytes.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
            bytes.clear();
        };
        for (std::string& t : tokens) {
            const int b = byte_token(t);
            if (b >= 0) { bytes += static_cast<char>(b); continue; }
            flush();
            out.push_back(std::move(t));
        }
        flush();
        tokens = std::move(out);
    }
    void raw_bytes(std::string& t) const override {
        const int b = byte_token(t);
        if (b >= 0) t.assign(1, static_cast<char>(b));
    }
};

class FuseDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
    void raw_bytes(std::string&) const override {}
};

class StripDecoder final : public Decoder {
public:
    StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (std::string& t : tokens) {
            std::vector<size_t> at;  // byte offset of each character, plus the end
            for (size_t i = 0; i < t.size();) { at.push_back(i); utf8::next(t, i); }
            const size_t n = at.size();
            at.push_back(t.size());
            auto cp = [&](size_t k) { size_t i = at[k]; return utf8::next(t, i); };
            size_t start_cut = 0;
            for (size_t k = 0; k < std::min(start_, n); ++k) {
                if (cp(k) != content_) break;
                start_cut = k + 1;
            }
            size_t stop_cut = n;
            for (size_t k = 0; k < stop_ && k < n; ++k) {
                const size_t index = n - k - 1;
                if (cp(index) != content_) break;
                stop_cut = index;
            }
            t = stop_cut > start_cut ? t.substr(at[start_cut], at[stop_cut] - at[start_cut]) : std::string();
        }
    }
    void raw_bytes(std::string&) const override {}

private:
    char32_t content_;
    size_t start_, stop_;
};

class MetaspaceDecoder final : public Decoder {
public:
    MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (size_t k = 0; k < tokens.size(); ++k) replace(tokens[k], k == 0 && strip_first_);
    }
    void raw_bytes(std::string& t) const override { replace(t, false); }

private:
    void replace(std::string& t, bool drop) const {
        std::string out;
        for (size_t at = 0;;) {
            const size_t f = t.find(rep_, at);
            out.append(t, at, f == std::string::npos ? std::string::npos : f - at);
            if (f == std::string::npos) break;
            if (!drop) out += ' ';
            at = f + rep_.size();
        }
        t = std::move(out);
    }
    std::string rep_;
    bool strip_first_;
};

class SequenceDecoder final : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> s) : stages_(std::move(s)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (const auto& d : stages_) d->decode_chain(tokens);
    }
    void raw_bytes(std::string& t) const override {
        for (const auto& d : stages_) d->raw_bytes(t);
    }

private:
    std::vector<std::unique_ptr<Decoder>> stages_;
};

char32_t one_char(const JsonAt& at, const char* key) {
    const std::string s = at.str(key);
    size_t i = 0;
    if (s.empty() || utf8::valid_seq_len(s, 0) == 0) at.child(key).fail("is not one character");
    const char32_t c = utf8::next(s, i);
    if (i != s.size()) at.child(key).fail("is not one character");
    return c;
}

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const JsonAt& at) {
    if (at.j.is_null()) return nullptr;
    const std::string t = at.type();
    if (t == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (t == "Replace") return std::make_unique<ReplaceDecoder>(parse_pattern(at), at.str("content"));
    if (t == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
    if (t == "Fuse") return std::make_unique<FuseDecoder>();
    if (t == "Strip") {
        const int64_t start = at.integer("start"), stop = at.integer("stop");
        if (start < 0 || stop < 0) at.fail("Strip start/stop must be >= 0");
        return std::make_unique<StripDecoder>(one_char(at, "content"), static_cast<size_t>(start), static_cast<size_t>(stop));
    }
    if (t == "Metaspace") {
        std::string rep = at.str_or("replacement", "\xE2\x96\x81");
        bool strip_first = true;
        if (at.has("prepend_scheme")) strip_first = at.str("prepend_scheme") != "never";
        else if (at.has("add_prefix_space")) strip_first = at.boolean_or("add_prefix_space", true);
        return std::make_unique<MetaspaceDecoder>(std::move(rep), strip_first);
    }
    if (t == "Sequence") {
        std::vector<std::unique_ptr<Decoder>> stages;
        const auto& arr = at.array("decoders");
        const JsonAt list = at.child("decoders");
        for (size_t i = 0; i < arr.size(); ++i)
            if (auto d = parse_decoder(list.at(i))) stages.push_back(std::move(d));
        return std::make_unique<SequenceDecoder>(std::move(stages));
    }
    at.unsupported("decoder", "ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence");
}

}  // namespace moe::text
