// [SECTION] index
//   reading the files        whole-file read, JSON parse with the file named in errors
//   HfTokenizer              the pipeline: added tokens -> normalizer -> pre-tokenizer -> BPE
//                            -> post-processor; decode through the decoder
//   load_hf_tokenizer        tokenizer.json + tokenizer_config.json
#include "core/text/hf_tokenizer.h"

#include <optional>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/json_input.h"
#include "core/io/limits.h"
#include "core/text/added_tokens.h"
#include "core/text/bpe.h"
#include "core/text/decoders.h"
#include "core/text/normalizers.h"
#include "core/text/post_processors.h"
#include "core/text/pre_tokenizers.h"
#include "core/text/utf8.h"

namespace moe {

using namespace moe::text;

namespace {

// [SECTION] reading the files
// Depth-capped, and every JSON exception a moe::Error (1e999 throws out_of_range): issue 15.
nlohmann::json parse_json(const std::string& text, const std::string& file) {
    return parse_json_input(text, file, "", "a truncated download? fetch the file again");
}

// tokenizer.json is parsed with a SAX handler that builds the JSON tree for everything except
// model.vocab and model.merges (hundreds of thousands of small strings: the tree for the 28 MB
// o200k file alone takes most of a second), which it streams straight into BpeTables. Anything
// unexpected inside those two falls back to the plain tree, whose reader names the bad entry.
using Json = nlohmann::json;

class TokenizerSax {
public:
    explicit TokenizerSax(Json& root) : dom_(root, false) {}

    bool null() { return capturing() ? other() : (dom_.null()); }
    bool boolean(bool v) { return capturing() ? other() : (dom_.boolean(v)); }
    bool number_integer(int64_t v) { return capturing() ? id(v) : (dom_.number_integer(v)); }
    bool number_unsigned(uint64_t v) {
        return capturing() ? id(v > 0x7FFFFFFFull ? -1 : static_cast<int64_t>(v)) : (dom_.number_unsigned(v));
    }
    bool number_float(double v, const std::string& s) { return capturing() ? other() : (dom_.number_float(v, s)); }
    bool binary(Json::binary_t& b) { return capturing() ? other() : (dom_.binary(b)); }
    bool string(std::string& v) {
        if (!capturing()) return dom_.string(v);
        if (mode_ == Mode::Merges && depth_ == 1) {
            const size_t sp = v.find(' ');
            if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos) return other();
            tables.merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
            return true;
        }
        if (mode_ == Mode::Merges && depth_ == 2 && pair_.size() < 2) { pair_.push_back(std::move(v)); return true; }
        return other();
    }
    bool key(std::string& k) {
        if (capturing()) {
            if (mode_ == Mode::Vocab && depth_ == 1) { key_ = std::move(k); return true; }
            return other();
        }
        if (!stack_.empty()) stack_.back().key = k;
        return dom_.key(k);
    }
    bool start_object(size_t n) {
        if (capturing()) { ++depth_; return other(); }
        if (at_model_field("vocab")) { begin(Mode::Vocab); return true; }
        stack_.push_back({true, {}});
        return dom_.start_object(n);
    }
    bool end_object() {
        if (capturing()) return end_container();
        stack_.pop_back();
        return dom_.end_object();
    }
    bool start_array(size_t n) {
        if (capturing()) {
            ++depth_;
            if (mode_ == Mode::Merges && depth_ == 2) { pair_.clear(); return true; }
            return other();
        }
        if (at_model_field("merges")) { begin(Mode::Merges); return true; }
        stack_.push_back({false, {}});
        return dom_.start_array(n);
    }
    bool end_array() {
        if (capturing()) {
            if (mode_ == Mode::Merges && depth_ == 2) {
                if (pair_.size() != 2) fallback = true;
                else tables.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
            }
            return end_container();
        }
        stack_.pop_back();
        return dom_.end_array();
    }
    bool parse_error(size_t pos, const std::string& token, const nlohmann::detail::exception& e) {
        error = std::string(e.what()) + " (at byte " + std::to_string(pos) + ", near '" + token.substr(0, 40) + "')";
        return false;
    }

    BpeTables tables;
    bool fallback = false;  // something in vocab/merges the fast path does not take: reparse as a tree
    bool seen_vocab = false, seen_merges = false;  // a file without them goes to the tree's errors
    std::string error;

private:
    enum class Mode { None, Vocab, Merges };
    struct Level { bool object; std::string key; };

    bool capturing() const { return mode_ != Mode::None; }
    // The value about to start is root.model.<field>.
    bool at_model_field(const char* field) const {
        return stack_.size() == 2 && stack_[0].object && stack_[0].key == "model" && stack_[1].object && stack_[1].key == field;
    }
    void begin(Mode m) {
        (m == Mode::Vocab ? seen_vocab : seen_merges) = true;
        mode_ = m;
        depth_ = 1;
        dom_.null();  // the tree holds null where the streamed table was
    }
    bool end_container() {
        if (--depth_ == 0) mode_ = Mode::None;
        return true;
    }
    bool id(int64_t v) {
        if (mode_ == Mode::Vocab && depth_ == 1 && v >= 0) { tables.vocab.emplace_back(std::move(key_), v); return true; }
        return other();
    }
    bool other() {
        fallback = true;
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<Json> dom_;
    std::vector<Level> stack_;
    Mode mode_ = Mode::None;
    int depth_ = 0;
    std::string key_;
    std::vector<std::string> pair_;
};

struct ParsedTokenizer {
    Json root;
    std::optional<BpeTables> tables;  // streamed, when the fast path took the file
};

ParsedTokenizer parse_tokenizer_json(const std::string& text, const std::string& file) {
    check_json_depth(text, file, "");
    ParsedTokenizer p;
    {
        TokenizerSax sax(p.root);
        bool ok = false;
        try {
            ok = Json::sax_parse(text, &sax);
        } catch (const nlohmann::json::exception& e) {
            throw Error(file, "", std::string("is not valid JSON: ") + e.what(), "a truncated download? fetch the file again");
        }
        if (!ok) throw Error(file, "", "is not valid JSON: " + sax.error, "a truncated download? fetch the file again");
        if (!sax.fallback && sax.seen_vocab && sax.seen_merges) p.tables = std::move(sax.tables);
    }
    if (!p.tables) p.root = parse_json(text, file);
    return p;
}

// [SECTION] HfTokenizer
class HfTokenizer final : public Tokenizer {
public:
    HfTokenizer(ParsedTokenizer parsed, const std::string& file) : file_(file) {
        const nlohmann::json& j = parsed.root;
        const JsonAt root{j, file_, ""};
        root.require_object();
        const JsonAt model = root.child("model");
        model.require_object();
        const std::string mt = model.str_or("type", "BPE");
        if (mt != "BPE") model.unsupported("model", "BPE");
        if (root.has("truncation")) root.child("truncation").fail("truncation is set", "moelab encodes whole texts: set it to null");
        if (root.has("padding")) root.child("padding").fail("padding is set", "moelab encodes one text at a time: set it to null");
        bpe_ = std::make_unique<BpeModel>(model, parsed.tables ? std::move(*parsed.tables) : BpeModel::tables_from_json(model));
        normalizer_ = parse_normalizer(root.has("normalizer") ? root.child("normalizer") : JsonAt{nullptr_json(), file_, "normalizer"});
        pre_ = parse_pre_tokenizer(root.has("pre_tokenizer") ? root.child("pre_tokenizer") : JsonAt{nullptr_json(), file_, "pre_tokenizer"});
        post_ = parse_post_processor(root.has("post_processor") ? root.child("post_processor") : JsonAt{nullptr_json(), file_, "post_processor"});
        decoder_ = parse_decoder(root.has("decoder") ? root.child("decoder") : JsonAt{nullptr_json(), file_, "decoder"});
        byte_level_ = pre_ && pre_->byte_level();
        vocab_size_ = bpe_->size();
        read_added_tokens(root);
    }

    std::string name() const override {
        return "BPE " + std::to_string(vocab_size_ / 1000) + "k (" + std::filesystem::path(file_).parent_path().filename().string() + ")";
    }
    int32_t vocab_size() const override { return vocab_size_; }

    std::vector<TokenId> encode(std::string_view text, bool add_special) const override {
        std::vector<TokenId> ids;
        if (byte_level_) {
            // Any bytes: valid UTF-8 runs go through the pipeline, each run of invalid bytes is
            // one word of its own for the model (the reference cannot take such input at all).
            size_t i = 0;
            while (i < text.size()) {
                size_t j = i;
                while (j < text.size() && (static_cast<unsigned char>(text[j]) < 0x80 || utf8::valid_seq_len(text, j) > 0))
                    j += static_cast<unsigned char>(text[j]) < 0x80 ? 1 : utf8::valid_seq_len(text, j);
                if (j > i || i == 0) encode_valid(text.substr(i, j - i), i == 0, ids);
                size_t k = j;
                while (k < text.size() && static_cast<unsigned char>(text[k]) >= 0x80 && utf8::valid_seq_len(text, k) == 0) ++k;
                if (k > j) {
                    std::string mapped;
                    for (size_t b = j; b < k; ++b) mapped += byte_level_char(static_cast<unsigned char>(text[b]));
                    bpe_->tokenize(mapped, ids);
                }
                i = k;
            }
        } else {
            utf8::require_valid(text, file_);
            encode_valid(text, true, ids);
        }
        if (add_special) {
            if (post_) post_->process(ids);
            const bool post_adds = post_ && post_->adds_tokens();
            if (add_bos_ && bos_ && !post_adds) ids.insert(ids.begin(), *bos_);
            if (add_eos_ && eos_ && !post_adds) ids.push_back(*eos_);
        }
        return ids;
    }

    std::string decode(std::span<const TokenId> ids, bool skip_special) const override {
        std::vector<std::string> tokens;
        tokens.reserve(ids.size());
        for (const TokenId id : ids) {
            const AddedToken* a = added_.by_id(id);
            if (a) {
                if (skip_special && a->special) continue;
                tokens.push_back(a->content);
                continue;
            }
            tokens.emplace_back();
            if (!bpe_->id_to_token(id, tokens.back())) bad_id(id);
        }
        if (!decoder_) {
            std::string out;
            for (size_t k = 0; k < tokens.size(); ++k) out += (k ? " " : "") + tokens[k];
            return out;
        }
        decoder_->decode_chain(tokens);
        std::string out;
        for (const std::string& t : tokens) out += t;
        return out;
    }

    std::string token_bytes(TokenId id) const override {
        if (const AddedToken* a = added_.by_id(id)) return a->content;
        std::string t;
        if (!bpe_->id_to_token(id, t)) bad_id(id);
        if (decoder_) decoder_->raw_bytes(t);
        return t;
    }
    bool is_special(TokenId id) const override {
        const AddedToken* a = added_.by_id(id);
        return a && a->special;
    }
    std::optional<TokenId> bos_id() const override { return bos_; }
    std::optional<TokenId> eos_id() const override { return eos_; }

    // tokenizer_config.json: bos_token / eos_token (a string or an AddedToken object) and
    // add_bos_token / add_eos_token.
    void read_config(const nlohmann::json& c, const std::string& file) {
        const JsonAt root{c, file, ""};
        root.require_object();
        auto token = [&](const char* key) -> std::optional<TokenId> {
            if (!root.has(key)) return std::nullopt;
            const JsonAt t = root.child(key);
            const std::string content = t.j.is_string() ? t.j.get<std::string>() : t.str("content");
            const std::optional<TokenId> id = token_to_id(content);
            if (!id) t.fail("'" + content + "' is not a token of " + file_);
            return id;
        };
        bos_ = token("bos_token");
        eos_ = token("eos_token");
        add_bos_ = root.boolean_or("add_bos_token", false);
        add_eos_ = root.boolean_or("add_eos_token", false);
    }

private:
    static const nlohmann::json& nullptr_json() {
        static const nlohmann::json n;
        return n;
    }

    [[noreturn]] void bad_id(TokenId id) const {
        throw Error(file_, "token id", "id " + num(id) + " has no token", "ids are in [0, " + num(vocab_size_) + ")");
    }

    std::optional<TokenId> token_to_id(const std::string& s) const {
        for (const AddedToken& a : added_.tokens()) if (a.content == s) return a.id;
        const auto it = bpe_->vocab().find(s);
        if (it != bpe_->vocab().end()) return it->second;
        return std::nullopt;
    }

    void read_added_tokens(const JsonAt& root) {
        std::vector<AddedToken> list;
        auto next_id = static_cast<int32_t>(bpe_->vocab().size());
        if (root.has("added_tokens")) {
            const auto& arr = root.array("added_tokens");
            const JsonAt aj = root.child("added_tokens");
            for (size_t i = 0; i < arr.size(); ++i) {
                const JsonAt t = aj.at(i);
                AddedToken a;
                a.content = t.str("content");
                const int64_t id = t.integer("id");
                if (id < 0 || id > 16 * 1024 * 1024) t.child("id").fail("id " + num(id) + " is out of range");
                a.id = static_cast<int32_t>(id);
                a.special = t.boolean_or("special", false);
                a.normalized = t.boolean_or("normalized", !a.special);
                a.lstrip = t.boolean_or("lstrip", false);
                a.rstrip = t.boolean_or("rstrip", false);
                a.single_word = t.boolean_or("single_word", false);
                if (utf8::first_invalid(a.content) != std::string::npos) t.child("content").fail("is not valid UTF-8");
                if (a.content.empty()) continue;  // the library ignores empty tokens
                // The library does not take the file's id: it gives a token the id it already
                // has (earlier added token, then the vocab), else the next free one. A file whose
                // ids disagree would encode differently there, so it is an error here.
                int32_t expect = -1;
                for (const AddedToken& prev : list) if (prev.content == a.content) expect = prev.id;
                if (expect < 0) {
                    const auto in_vocab = bpe_->vocab().find(a.content);
                    expect = in_vocab != bpe_->vocab().end() ? in_vocab->second : next_id++;
                }
                if (expect != a.id)
                    t.child("id").fail("is " + num(a.id) + ", but the tokenizers library would give '" + a.content + "' id " + num(expect),
                                       "added tokens take their vocab id, else the next id after the vocab, in file order");
                a.match = a.content;
                if (a.normalized && normalizer_) normalizer_->normalize(a.match);
                vocab_size_ = std::max(vocab_size_, a.id + 1);
                list.push_back(std::move(a));
            }
        }
        added_.set(std::move(list));
    }

    void encode_valid(std::string_view text, bool at_origin, std::vector<TokenId>& ids) const {
        Pieces pieces;
        pieces.push_back({std::string(text), -1, at_origin});
        added_.split(pieces, false);
        if (normalizer_)
            for (Piece& p : pieces)
                if (p.token < 0) normalizer_->normalize(p.text);
        added_.split(pieces, true);
        // Normalizing can empty a piece: drop those, as the library's split does.
        split_pieces(pieces, [](Piece& p, Pieces& out) { out.push_back(std::move(p)); });
        if (pre_) pre_->pre_tokenize(pieces);
        for (const Piece& p : pieces) {
            if (p.token >= 0) ids.push_back(p.token);
            else bpe_->tokenize(p.text, ids);
        }
    }

    std::string file_;
    std::unique_ptr<BpeModel> bpe_;
    std::unique_ptr<Normalizer> normalizer_;
    std::unique_ptr<PreTokenizer> pre_;
    std::unique_ptr<PostProcessor> post_;
    std::unique_ptr<Decoder> decoder_;
    AddedVocabulary added_;
    bool byte_level_ = false;
    int32_t vocab_size_ = 0;
    std::optional<TokenId> bos_, eos_;
    bool add_bos_ = false, add_eos_ = false;
};

}  // namespace

// [SECTION] load_hf_tokenizer
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::filesystem::path& path) {
    std::error_code ec;
    const bool folder = std::filesystem::is_directory(path, ec);
    const std::filesystem::path json_path = folder ? path / "tokenizer.json" : path;
    if (!std::filesystem::exists(json_path, ec))
        throw Error(json_path.string(), "", "does not exist", folder ? "the model folder needs a tokenizer.json" : "a tokenizer.json file or a model folder");
    const std::string file = json_path.string();
    auto tok = std::make_unique<HfTokenizer>(parse_tokenizer_json(read_file(file, kMaxTokenizerBytes), file), file);
    const std::filesystem::path config = path / "tokenizer_config.json";
    if (folder && std::filesystem::exists(config, ec))
        tok->read_config(parse_json(read_file(config.string(), kMaxConfigBytes), config.string()), config.string());
    return tok;
}

}  // namespace moe
