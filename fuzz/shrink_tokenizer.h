// A real tokenizer.json made small for fuzzing (fuzz_seeds' tokenizer seeds, fuzz_tokenizer's
// real tokenizers): every stage stays as the model ships it.
#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace moe::fuzz {

// Vocabulary entries kept in the real tokenizers fuzz_tokenizer's text inputs run on.
inline constexpr size_t kTextTokenizerVocab = 8192;

// A real tokenizer.json cut to its first n_keep vocabulary entries (plus added tokens) and the
// merges among them: every stage (normalizer, pre-tokenizer, decoder) stays as the model ships
// it; the post-processor, which names special tokens by id, is dropped (the ids are renumbered).
inline std::string shrink_tokenizer(const std::string& text, size_t n_keep) {
    nlohmann::json j = nlohmann::json::parse(text);
    nlohmann::json& model = j["model"];
    if (!model.contains("vocab") || !model["vocab"].is_object()) return {};
    std::vector<std::pair<int64_t, std::string>> by_id;
    for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) by_id.push_back({it.value().get<int64_t>(), it.key()});
    std::sort(by_id.begin(), by_id.end());
    nlohmann::json vocab = nlohmann::json::object();
    std::set<std::string> kept;
    for (size_t i = 0; i < by_id.size() && i < n_keep; ++i) {
        vocab[by_id[i].second] = static_cast<int64_t>(i);
        kept.insert(by_id[i].second);
    }
    nlohmann::json merges = nlohmann::json::array();
    if (model.contains("merges"))
        for (const nlohmann::json& m : model["merges"]) {
            std::string a, b;
            if (m.is_string()) {
                const std::string s = m.get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos) continue;
                a = s.substr(0, sp), b = s.substr(sp + 1);
            } else if (m.is_array() && m.size() == 2) {
                a = m[0].get<std::string>(), b = m[1].get<std::string>();
            } else {
                continue;
            }
            if (kept.count(a) && kept.count(b) && kept.count(a + b)) merges.push_back(m);
        }
    model["vocab"] = vocab;
    model["merges"] = merges;
    nlohmann::json added = nlohmann::json::array();
    int64_t next = static_cast<int64_t>(vocab.size());
    if (j.contains("added_tokens"))
        for (nlohmann::json t : j["added_tokens"]) {
            if (added.size() >= 8) break;
            // One in the kept vocabulary keeps its id there (the tokenizers library's rule).
            const std::string content = t.value("content", std::string());
            t["id"] = vocab.contains(content) ? vocab[content].get<int64_t>() : next++;
            added.push_back(t);
        }
    j["added_tokens"] = added;
    // Post-processors name special tokens by id: point them at the renumbered ones, or drop them.
    if (j.contains("post_processor") && !j["post_processor"].is_null()) j["post_processor"] = nullptr;
    return j.dump();
}

}  // namespace moe::fuzz
