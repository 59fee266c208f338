// [SECTION] index
//   reading the files        whole-file read, JSON parse with the file named in errors
//   HfTokenizer              the pipeline: added tokens -> normalizer -> pre-tokenizer -> BPE
//                            -> post-processor; decode through the decoder
//   load_hf_tokenizer        tokenizer.json + tokenizer_config.json
#include "core/text/hf_tokenizer.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/io/json_input.h"
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
std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw Error(p.string(), "", "cannot be opened", "a tokenizer.json file or a model folder holding one");
    std::string s;
    f.seekg(0, std::ios::end);
    const auto n = f.tellg();
    if (n < 0) throw Error(p.string(), "", "cannot be read");
    s.resize(static_cast<size_t>(n));
    f.seekg(0);
    f.read(s.data(), n);
    if (!f) throw Error(p.string(), "", "cannot be read");
    return s;
}

// Depth-capped, and every JSON exception a moe::Error (1e999 throws out_of_range): issue 15.
nlohmann::json parse_json(const std::string& text, const std::string& file) {
    return parse_json_input(text, file, "", "a truncated download? fetch the file again");
}

// [SECTION] HfTokenizer
class HfTokenizer final : public Tokenizer {
public:
    HfTokenizer(const nlohmann::json& j, const std::string& file) : file_(file) {
        const JsonAt root{j, file_, ""};
        root.require_object();
        const JsonAt model = root.child("model");
        model.require_object();
        const std::string mt = model.str_or("type", "BPE");
        if (mt != "BPE") model.unsupported("model", "BPE");
        if (root.has("truncation")) root.child("truncation").fail("truncation is set", "moelab encodes whole texts: set it to null");
        if (root.has("padding")) root.child("padding").fail("padding is set", "moelab encodes one text at a time: set it to null");
        bpe_ = std::make_unique<BpeModel>(model);
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
    auto tok = std::make_unique<HfTokenizer>(parse_json(read_file(json_path), file), file);
    const std::filesystem::path config = path / "tokenizer_config.json";
    if (folder && std::filesystem::exists(config, ec))
        tok->read_config(parse_json(read_file(config), config.string()), config.string());
    return tok;
}

}  // namespace moe
