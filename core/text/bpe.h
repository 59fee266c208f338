// The BPE model (tokenizers/src/models/bpe): one word -> ids by applying merges in rank order,
// with byte fallback, unk fusing, ignore_merges and subword affixes as the library does.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/text/json_at.h"

namespace moe::text {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// model.vocab and model.merges, read either from the JSON tree or streamed by the loader's
// fast path (hf_tokenizer.cpp), which leaves them out of the tree.
struct BpeTables {
    std::vector<std::pair<std::string, int64_t>> vocab;
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order
};

class BpeModel {
public:
    static BpeTables tables_from_json(const JsonAt& model);
    // at: the "model" object of tokenizer.json (type BPE), for its other fields and for errors.
    BpeModel(const JsonAt& at, BpeTables tables);

    // Appends the ids of one pre-tokenized word (the library's BPE::tokenize).
    void tokenize(std::string_view word, std::vector<int32_t>& out) const;

    const Vocab& vocab() const { return vocab_; }
    // The token string of an id in the model's vocab ("" and false if it has none).
    bool id_to_token(int32_t id, std::string& token) const;
    int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }
    bool byte_fallback() const { return byte_fallback_; }

private:
    void merge_word(std::string_view w, std::vector<int32_t>& out) const;
    void merge_cached(std::string_view w, std::vector<int32_t>& out) const;
    bool joinable(char32_t left, char32_t right) const;

    Vocab vocab_;
    std::vector<std::string> id_to_token_;  // index = id; "" where the vocab has a gap
    std::vector<bool> has_token_;
    // (left id << 32 | right id) -> (rank << 32 | merged id)
    std::unordered_map<uint64_t, uint64_t> merges_;
    std::string prefix_, suffix_;
    int32_t unk_id_ = -1;
    bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
    std::array<int32_t, 256> byte_fallback_ids_{};
    // (last character of a merge's left token << 32 | first character of its right token):
    // only between such characters can a merge ever join two symbols. A long word (a whole
    // SentencePiece-style line has no pre-tokenizer to cut it) is cut everywhere else and the
    // pieces merged alone, which gives the same ids (no merge crosses a cut) but keeps the heap
    // small and lets the word cache serve the pieces. Empty when affixes make this unsound.
    std::unordered_set<uint64_t> joinable_;
    bool can_cut_ = false;

    // Word cache (as the library's): words under 256 bytes, bounded so memory stays flat.
    static constexpr size_t kCacheMaxWordBytes = 256, kCacheCapacity = 100000;
    mutable std::mutex cache_mu_;
    mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace moe::text
