// A node of tokenizer.json with its JSON path, so that every error names the file, the path
// ("pre_tokenizer.pretokenizers[1].pattern") and what was expected.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace moe::text {

struct JsonAt {
    const nlohmann::json& j;
    const std::string& file;
    std::string path;

    JsonAt child(const char* key) const {
        require_object();
        const auto it = j.find(key);
        if (it == j.end()) fail("is missing", "tokenizer.json needs \"" + std::string(key) + "\" here", key);
        return {*it, file, join(key)};
    }
    bool has(const char* key) const { return j.is_object() && j.contains(key) && !j.at(key).is_null(); }
    JsonAt at(size_t i) const { return {j.at(i), file, path + "[" + std::to_string(i) + "]"}; }

    std::string str(const char* key) const {
        const JsonAt c = child(key);
        if (!c.j.is_string()) c.fail("is " + std::string(c.j.type_name()) + ", not a string");
        return c.j.get<std::string>();
    }
    std::string str_or(const char* key, std::string fallback) const { return has(key) ? str(key) : fallback; }
    bool boolean_or(const char* key, bool fallback) const {
        if (!has(key)) return fallback;
        const JsonAt c = child(key);
        if (!c.j.is_boolean()) c.fail("is " + std::string(c.j.type_name()) + ", not true/false");
        return c.j.get<bool>();
    }
    int64_t integer(const char* key) const {
        const JsonAt c = child(key);
        if (!c.j.is_number_integer()) c.fail("is " + std::string(c.j.type_name()) + ", not an integer");
        return c.j.get<int64_t>();
    }
    int64_t integer_or(const char* key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
    const nlohmann::json& array(const char* key) const {
        const JsonAt c = child(key);
        if (!c.j.is_array()) c.fail("is " + std::string(c.j.type_name()) + ", not an array");
        return c.j;
    }
    void require_object() const {
        if (!j.is_object()) fail("is " + std::string(j.type_name()) + ", not an object");
    }
    std::string type() const { return str("type"); }

    [[noreturn]] void fail(const std::string& problem, const std::string& hint = {}, const char* key = nullptr) const {
        throw Error(file, key ? join(key) : (path.empty() ? std::string("(top level)") : path), problem, hint);
    }
    [[noreturn]] void unsupported(const std::string& stage, const std::string& supported) const {
        throw Error(file, join("type"), "unsupported " + stage + " type '" + type() + "'",
                    "moelab supports " + supported);
    }

private:
    std::string join(const char* key) const { return path.empty() ? std::string(key) : path + "." + key; }
};

}  // namespace moe::text
