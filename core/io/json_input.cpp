#include "core/io/json_input.h"

#include "core/error.h"
#include "core/io/limits.h"

#include <set>
#include <vector>

namespace moe {

void check_json_depth(std::string_view text, const std::string& where, const std::string& field) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth)
                throw Error(where, field, "nests arrays and objects more than " + std::to_string(kMaxJsonDepth) + " deep (at byte " + std::to_string(i) + ")",
                            "real files nest a few levels; the file is corrupt or hostile");
        } else if (c == ']' || c == '}') {
            --depth;  // unbalanced brackets are the parser's to report
        }
    }
}

nlohmann::json parse_json_input(std::string_view text, const std::string& where, const std::string& field,
                                const std::string& hint) {
    check_json_depth(text, where, field);
    try {
        return nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range 406 for 1e999
        throw Error(where, field, std::string("is not valid JSON: ") + e.what(), hint);
    }
}

namespace {

// Keys per open object; everything else is ignored.
struct DuplicateKeys : nlohmann::json_sax<nlohmann::json> {
    std::vector<std::set<std::string>> open;
    std::string found;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override {
        open.emplace_back();
        return true;
    }
    bool key(string_t& k) override {
        if (!open.empty() && !open.back().insert(k).second) {
            found = k;
            return false;  // the first one is enough
        }
        return true;
    }
    bool end_object() override {
        if (!open.empty()) open.pop_back();
        return true;
    }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

std::string first_duplicate_key(std::string_view text) {
    DuplicateKeys sax;
    try {
        nlohmann::json::sax_parse(text.begin(), text.end(), &sax);
    } catch (const nlohmann::json::exception&) {  // 1e999: not ours to report
    }
    return sax.found;
}

std::string json_shown(const nlohmann::json& v) {
    if (v.is_array()) return "an array of " + std::to_string(v.size());
    if (v.is_object()) return "an object";
    std::string s = v.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);  // ASCII: no raw bytes in messages
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return s;
}

std::string json_described(const nlohmann::json& v) {
    if (v.is_number_integer() || v.is_array() || v.is_object()) return json_shown(v);
    if (v.is_number_float()) return "a number with a fraction (" + json_shown(v) + ")";
    if (v.is_string()) return "a string (" + json_shown(v) + ")";
    if (v.is_boolean()) return "a boolean (" + json_shown(v) + ")";
    return json_shown(v);  // null
}

int64_t json_integer(const nlohmann::json& v, const std::string& where, const std::string& field, int64_t lo, int64_t hi,
                     const std::string& hint) {
    const bool in_range = v.is_number_unsigned()  ? v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX) &&
                                                       v.get<int64_t>() >= lo && v.get<int64_t>() <= hi
                          : v.is_number_integer() ? v.get<int64_t>() >= lo && v.get<int64_t>() <= hi
                                                  : false;
    if (!in_range)
        throw Error(where, field, "is " + json_described(v),
                    "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + (hint.empty() ? "" : "; " + hint));
    return v.get<int64_t>();
}

}  // namespace moe
