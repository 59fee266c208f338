#include "core/text/post_processors.h"

#include <map>
#include <string>

namespace moe::text {

namespace {

class TemplateProcessor final : public PostProcessor {
public:
    struct Item { bool sequence; std::vector<int32_t> ids; };
    explicit TemplateProcessor(std::vector<Item> items) : items_(std::move(items)) {}
    void process(std::vector<int32_t>& ids) const override {
        std::vector<int32_t> out;
        out.reserve(ids.size() + 4);
        for (const Item& it : items_) {
            if (it.sequence) out.insert(out.end(), ids.begin(), ids.end());
            else out.insert(out.end(), it.ids.begin(), it.ids.end());
        }
        ids = std::move(out);
    }
    bool adds_tokens() const override {
        for (const Item& it : items_) if (!it.sequence && !it.ids.empty()) return true;
        return false;
    }

private:
    std::vector<Item> items_;
};

class PassThrough final : public PostProcessor {
public:
    void process(std::vector<int32_t>&) const override {}
    bool adds_tokens() const override { return false; }
};

class SequenceProcessor final : public PostProcessor {
public:
    explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> s) : stages_(std::move(s)) {}
    void process(std::vector<int32_t>& ids) const override {
        for (const auto& p : stages_) p->process(ids);
    }
    bool adds_tokens() const override {
        for (const auto& p : stages_) if (p->adds_tokens()) return true;
        return false;
    }

private:
    std::vector<std::unique_ptr<PostProcessor>> stages_;
};

std::unique_ptr<PostProcessor> parse_template(const JsonAt& at) {
    std::map<std::string, std::vector<int32_t>> specials;
    const JsonAt st = at.child("special_tokens");
    st.require_object();
    for (auto it = st.j.begin(); it != st.j.end(); ++it) {
        const JsonAt one{it.value(), at.file, st.path + "[\"" + it.key() + "\"]"};
        const auto& ids = one.array("ids");
        std::vector<int32_t> v;
        for (size_t i = 0; i < ids.size(); ++i) {
            if (!ids[i].is_number_integer() || ids[i].get<int64_t>() < 0 || ids[i].get<int64_t>() > 0x7FFFFFFF)
                one.child("ids").at(i).fail("is not a token id");
            v.push_back(static_cast<int32_t>(ids[i].get<int64_t>()));
        }
        specials[it.key()] = std::move(v);
    }
    const auto& single = at.array("single");
    const JsonAt sj = at.child("single");
    std::vector<TemplateProcessor::Item> items;
    for (size_t i = 0; i < single.size(); ++i) {
        const JsonAt piece = sj.at(i);
        if (piece.has("Sequence")) {
            const std::string id = piece.child("Sequence").str("id");
            if (id != "A") piece.child("Sequence").fail("sequence '" + id + "' in a single template", "the single template uses $A");
            items.push_back({true, {}});
        } else if (piece.has("SpecialToken")) {
            const std::string id = piece.child("SpecialToken").str("id");
            const auto f = specials.find(id);
            if (f == specials.end()) piece.child("SpecialToken").fail("'" + id + "' is not in special_tokens");
            items.push_back({false, f->second});
        } else {
            piece.fail("is neither a Sequence nor a SpecialToken");
        }
    }
    return std::make_unique<TemplateProcessor>(std::move(items));
}

}  // namespace

std::unique_ptr<PostProcessor> parse_post_processor(const JsonAt& at) {
    if (at.j.is_null()) return nullptr;
    const std::string t = at.type();
    if (t == "TemplateProcessing") return parse_template(at);
    if (t == "ByteLevel") return std::make_unique<PassThrough>();
    if (t == "Sequence") {
        std::vector<std::unique_ptr<PostProcessor>> stages;
        const auto& arr = at.array("processors");
        const JsonAt list = at.child("processors");
        for (size_t i = 0; i < arr.size(); ++i)
            if (auto p = parse_post_processor(list.at(i))) stages.push_back(std::move(p));
        return std::make_unique<SequenceProcessor>(std::move(stages));
    }
    at.unsupported("post-processor", "TemplateProcessing, ByteLevel, Sequence");
}

}  // namespace moe::text
