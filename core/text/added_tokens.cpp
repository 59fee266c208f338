#include "core/text/added_tokens.h"

#include <algorithm>

#include "core/text/regex.h"

namespace moe::text {

namespace {
// The library's checks, with the regex crate's Unicode \w and \s.
const Regex& re(const char* which) {
    static const Regex ends_word("\\w\\z", "added tokens", "single_word");
    static const Regex starts_word("\\A\\w", "added tokens", "single_word");
    static const Regex space_at_end("\\s*\\z", "added tokens", "lstrip");
    static const Regex space_at_start("\\A\\s*", "added tokens", "rstrip");
    switch (which[0]) {
        case 'e': return ends_word;
        case 'b': return starts_word;
        case 'l': return space_at_end;
        default: return space_at_start;
    }
}
bool found(const char* which, std::string_view s, size_t* start = nullptr, size_t* end = nullptr) {
    size_t a = 0, b = 0;
    const bool ok = re(which).search(s, 0, &a, &b);
    if (start) *start = a;
    if (end) *end = b;
    return ok;
}
}  // namespace

void AddedVocabulary::set(std::vector<AddedToken> tokens) {
    tokens_ = std::move(tokens);
    index_by_id_.clear();
    raw_ = Matcher{};
    normalized_ = Matcher{};
    for (size_t k = 0; k < tokens_.size(); ++k) {
        const AddedToken& t = tokens_[k];
        if (static_cast<size_t>(t.id) >= index_by_id_.size()) index_by_id_.resize(static_cast<size_t>(t.id) + 1, -1);
        index_by_id_[static_cast<size_t>(t.id)] = static_cast<int32_t>(k);
        if (t.match.empty()) continue;
        Matcher& m = t.normalized ? normalized_ : raw_;
        m.by_first[static_cast<unsigned char>(t.match[0])].push_back(k);
        m.empty = false;
    }
    for (Matcher* m : {&raw_, &normalized_})
        for (auto& list : m->by_first)
            std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) { return tokens_[a].match.size() > tokens_[b].match.size(); });
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= index_by_id_.size() || index_by_id_[static_cast<size_t>(id)] < 0) return nullptr;
    return &tokens_[static_cast<size_t>(index_by_id_[static_cast<size_t>(id)])];
}

void AddedVocabulary::find(const Matcher& m, const Piece& p, Pieces& out) const {
    const std::string& s = p.text;
    size_t start_offset = 0, pos = 0;
    auto emit_text = [&](size_t a, size_t b) { out.push_back({s.substr(a, b - a), -1, p.at_origin && a == 0}); };
    while (pos < s.size()) {
        const auto& cands = m.by_first[static_cast<unsigned char>(s[pos])];
        const AddedToken* hit = nullptr;
        for (const size_t k : cands) {
            const std::string& c = tokens_[k].match;
            if (s.compare(pos, c.size(), c) == 0) { hit = &tokens_[k]; break; }
        }
        if (!hit) { ++pos; continue; }
        size_t start = pos, stop = pos + hit->match.size();
        pos = stop;  // matches never overlap, also when one is rejected below
        if (hit->single_word) {
            const bool start_space = start == 0 || !found("e", std::string_view(s).substr(0, start));
            const bool stop_space = stop == s.size() || !found("b", std::string_view(s).substr(stop));
            if (!start_space || !stop_space) continue;
        }
        if (hit->lstrip) {
            size_t ws = 0;
            if (!found("l", std::string_view(s).substr(0, start), &ws)) ws = start;
            start = std::max(ws, start_offset);
        }
        if (hit->rstrip) {
            size_t a = 0, b = 0;
            if (found("r", std::string_view(s).substr(stop), &a, &b)) stop += b;
        }
        if (start_offset < start) emit_text(start_offset, start);
        out.push_back({s.substr(start, stop - start), hit->id, false});
        start_offset = stop;
        pos = std::max(pos, stop);
    }
    if (start_offset != s.size()) emit_text(start_offset, s.size());
}

void AddedVocabulary::split(Pieces& pieces, bool want_normalized) const {
    const Matcher& m = want_normalized ? normalized_ : raw_;
    if (m.empty) return;
    split_pieces(pieces, [&](const Piece& p, Pieces& out) { find(m, p, out); });
}

}  // namespace moe::text
