#include "core/text/bpe.h"

#include <cstdio>
#include <queue>

#include "core/text/utf8.h"

namespace moe::text {

BpeTables BpeModel::tables_from_json(const JsonAt& at) {
    BpeTables t;
    const JsonAt vj = at.child("vocab");
    vj.require_object();
    t.vocab.reserve(vj.j.size());
    for (auto it = vj.j.begin(); it != vj.j.end(); ++it) {
        if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > 0x7FFFFFFF)
            throw Error(at.file, vj.path + "[\"" + it.key() + "\"]", "is not a token id (a non-negative integer)");
        t.vocab.emplace_back(it.key(), it.value().get<int64_t>());
    }
    const auto& merges = at.array("merges");
    const JsonAt mj = at.child("merges");
    t.merges.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const auto& m = merges[rank];
        if (m.is_string()) {
            // "a b": exactly one space, as the library's legacy format requires.
            const std::string& s = m.get_ref<const std::string&>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                mj.at(rank).fail("'" + s + "' is not two tokens separated by one space");
            t.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            t.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        } else {
            mj.at(rank).fail("is not a merge", "a merge is \"a b\" or [\"a\", \"b\"]");
        }
    }
    return t;
}

BpeModel::BpeModel(const JsonAt& at, BpeTables tables) {
    const std::string& file = at.file;
    const std::string vpath = at.path.empty() ? "vocab" : at.path + ".vocab";
    const std::string mpath = at.path.empty() ? "merges" : at.path + ".merges";
    vocab_.reserve(tables.vocab.size());
    for (auto& [tok, id64] : tables.vocab) {
        if (id64 < 0 || id64 > 16 * 1024 * 1024)
            throw Error(file, vpath + "[\"" + tok + "\"]", "id " + num(id64) + " is out of range", "vocabularies have under 16M tokens");
        vocab_.insert_or_assign(std::move(tok), static_cast<int32_t>(id64));  // a repeated key: the last wins, as in serde and nlohmann
    }
    int32_t max_id = -1;
    for (const auto& [tok, id] : vocab_) max_id = std::max(max_id, id);
    id_to_token_.assign(static_cast<size_t>(max_id + 1), {});
    has_token_.assign(static_cast<size_t>(max_id + 1), false);
    for (const auto& [tok, id] : vocab_) {
        id_to_token_[static_cast<size_t>(id)] = tok;
        has_token_[static_cast<size_t>(id)] = true;
    }

    prefix_ = at.str_or("continuing_subword_prefix", "");
    suffix_ = at.str_or("end_of_word_suffix", "");
    fuse_unk_ = at.boolean_or("fuse_unk", false);
    byte_fallback_ = at.boolean_or("byte_fallback", false);
    ignore_merges_ = at.boolean_or("ignore_merges", false);
    if (at.has("dropout")) {
        const JsonAt d = at.child("dropout");
        if (!d.j.is_number() || d.j.get<double>() != 0.0)
            d.fail("BPE dropout is random at encode time", "moelab encodes deterministically: dropout must be null or 0");
    }
    if (at.has("unk_token")) {
        const std::string unk = at.str("unk_token");
        const auto it = vocab_.find(unk);
        if (it == vocab_.end()) at.child("unk_token").fail("'" + unk + "' is not in model.vocab");
        unk_id_ = it->second;
    }
    byte_fallback_ids_.fill(-1);
    if (byte_fallback_) {
        for (int b = 0; b < 256; ++b) {
            char code[8];
            std::snprintf(code, sizeof code, "<0x%02X>", b);
            const auto it = vocab_.find(std::string_view(code));
            if (it != vocab_.end()) byte_fallback_ids_[static_cast<size_t>(b)] = it->second;
        }
    }

    merges_.reserve(tables.merges.size());
    std::string merged;
    auto bad_merge = [&](size_t rank, const std::string& problem) {
        throw Error(file, mpath + "[" + std::to_string(rank) + "]", problem);
    };
    for (size_t rank = 0; rank < tables.merges.size(); ++rank) {
        const std::string_view a = tables.merges[rank].first, b = tables.merges[rank].second;
        const auto ia = vocab_.find(a);
        if (ia == vocab_.end()) bad_merge(rank, "names '" + std::string(a) + "', which is not in model.vocab");
        const auto ib = vocab_.find(b);
        if (ib == vocab_.end()) bad_merge(rank, "names '" + std::string(b) + "', which is not in model.vocab");
        if (b.size() < prefix_.size())
            bad_merge(rank, "right token '" + std::string(b) + "' is shorter than continuing_subword_prefix");
        merged.assign(a);
        merged.append(b.substr(prefix_.size()));
        const auto im = vocab_.find(merged);
        if (im == vocab_.end()) bad_merge(rank, "makes '" + merged + "', which is not in model.vocab");
        const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) | static_cast<uint32_t>(ib->second);
        if (prefix_.empty() && suffix_.empty() && !a.empty() && !b.empty() && utf8::first_invalid(a) == std::string_view::npos &&
            utf8::first_invalid(b) == std::string_view::npos) {
            size_t last = a.size() - 1;
            while (last > 0 && (static_cast<unsigned char>(a[last]) & 0xC0) == 0x80) --last;
            size_t i = 0, j = last;
            const char32_t first_b = utf8::next(b, i), last_a = utf8::next(a, j);
            joinable_.insert((static_cast<uint64_t>(last_a) << 32) | first_b);
        }
        // A repeated pair keeps its last rank, as the library's map collect does.
        merges_[key] = (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(im->second);
    }
    can_cut_ = prefix_.empty() && suffix_.empty();
}

bool BpeModel::joinable(char32_t left, char32_t right) const {
    return joinable_.count((static_cast<uint64_t>(left) << 32) | right) != 0;
}

bool BpeModel::id_to_token(int32_t id, std::string& token) const {
    if (id < 0 || static_cast<size_t>(id) >= has_token_.size() || !has_token_[static_cast<size_t>(id)]) return false;
    token = id_to_token_[static_cast<size_t>(id)];
    return true;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        const auto it = vocab_.find(word);
        if (it != vocab_.end()) { out.push_back(it->second); return; }
    }
    if (word.size() < kCacheMaxWordBytes || !can_cut_ || utf8::first_invalid(word) != std::string_view::npos) {
        merge_cached(word, out);
        return;
    }
    // Cut between two characters that are both whole vocab symbols and that no merge joins.
    size_t piece = 0, i = 0;
    char32_t prev = 0;
    bool prev_symbol = false;
    while (i < word.size()) {
        const size_t at = i;
        const char32_t cp = utf8::next(word, i);
        const bool symbol = vocab_.find(word.substr(at, i - at)) != vocab_.end();
        if (at > piece && prev_symbol && symbol && !joinable(prev, cp)) {
            merge_cached(word.substr(piece, at - piece), out);
            piece = at;
        }
        prev = cp;
        prev_symbol = symbol;
    }
    merge_cached(word.substr(piece), out);
}

void BpeModel::merge_cached(std::string_view word, std::vector<int32_t>& out) const {
    const bool cacheable = word.size() < kCacheMaxWordBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mu_);
        const auto it = cache_.find(word);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = out.size();
    merge_word(word, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mu_);
        if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
    }
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
    struct Symbol { int32_t id; int32_t prev, next; bool alive; };
    std::vector<Symbol> sym;
    sym.reserve(w.size());
    auto add = [&](int32_t id) {
        const auto n = static_cast<int32_t>(sym.size());
        sym.push_back({id, n - 1, n + 1, true});
    };
    int32_t pending_unk = -1;  // an unk not added yet (so that the next unknown can fuse into it)
    std::string s;
    size_t i = 0;
    while (i < w.size()) {
        const size_t start = i;
        const auto b0 = static_cast<unsigned char>(w[i]);
        i += b0 < 0x80 ? 1 : b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
        if (i > w.size()) i = w.size();
        std::string_view ch = w.substr(start, i - start);
        const bool is_first = start == 0, is_last = i >= w.size();
        std::string_view key = ch;
        if ((!is_first && !prefix_.empty()) || (is_last && !suffix_.empty())) {
            s.clear();
            if (!is_first) s += prefix_;
            s += ch;
            if (is_last) s += suffix_;
            key = s;
        }
        const auto it = vocab_.find(key);
        if (it != vocab_.end()) {
            if (pending_unk >= 0) { add(pending_unk); pending_unk = -1; }
            add(it->second);
            continue;
        }
        if (byte_fallback_) {
            bool all = true;
            for (const char c : key) all = all && byte_fallback_ids_[static_cast<unsigned char>(c)] >= 0;
            if (all) {
                // The library adds byte tokens without flushing a pending unk first.
                for (const char c : key) add(byte_fallback_ids_[static_cast<unsigned char>(c)]);
                continue;
            }
        }
        if (unk_id_ >= 0) {
            if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
            pending_unk = unk_id_;
        }
    }
    if (pending_unk >= 0) add(pending_unk);
    if (sym.empty()) return;
    sym.back().next = -1;

    struct Merge {
        uint32_t rank;
        int32_t pos;
        int32_t new_id;
        bool operator<(const Merge& o) const {  // std::priority_queue pops the largest
            return rank != o.rank ? rank > o.rank : pos > o.pos;
        }
    };
    auto lookup = [&](int32_t a, int32_t b, uint64_t& v) {
        const auto it = merges_.find((static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b));
        if (it == merges_.end()) return false;
        v = it->second;
        return true;
    };
    std::vector<Merge> heap_storage;
    heap_storage.reserve(sym.size());
    std::priority_queue<Merge> queue(std::less<Merge>(), std::move(heap_storage));
    uint64_t v = 0;
    for (size_t k = 0; k + 1 < sym.size(); ++k)
        if (lookup(sym[k].id, sym[k + 1].id, v))
            queue.push({static_cast<uint32_t>(v >> 32), static_cast<int32_t>(k), static_cast<int32_t>(v & 0xFFFFFFFF)});
    while (!queue.empty()) {
        const Merge top = queue.top();
        queue.pop();
        Symbol& cur = sym[static_cast<size_t>(top.pos)];
        if (!cur.alive || cur.next < 0) continue;
        Symbol& right = sym[static_cast<size_t>(cur.next)];
        // A stale entry: the pair at this position changed since it was queued.
        if (!lookup(cur.id, right.id, v) || static_cast<int32_t>(v & 0xFFFFFFFF) != top.new_id) continue;
        cur.id = top.new_id;
        right.alive = false;
        cur.next = right.next;
        if (right.next >= 0) sym[static_cast<size_t>(right.next)].prev = top.pos;
        if (cur.prev >= 0 && lookup(sym[static_cast<size_t>(cur.prev)].id, cur.id, v))
            queue.push({static_cast<uint32_t>(v >> 32), cur.prev, static_cast<int32_t>(v & 0xFFFFFFFF)});
        if (cur.next >= 0 && lookup(cur.id, sym[static_cast<size_t>(cur.next)].id, v))
            queue.push({static_cast<uint32_t>(v >> 32), top.pos, static_cast<int32_t>(v & 0xFFFFFFFF)});
    }
    for (const Symbol& sy : sym)
        if (sy.alive) out.push_back(sy.id);
}

}  // namespace moe::text
