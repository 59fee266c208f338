// JSON read from outside (safetensors headers, model configs, HF config.json): parsed under the
// limits of core/io/limits.h, every failure a moe::Error. Two rules the fuzzers taught us:
//   - nesting is capped before parsing: dump(), copies and comparisons of a json recurse, so a
//     10,000-deep array in any field overflows the stack the first time it is shown or copied;
//   - every nlohmann exception becomes moe::Error, not only parse_error: a number too large for
//     a double ("1e999") throws out_of_range (406) from the parser.
#pragma once

#include <nlohmann/json.hpp>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe {

// Throws moe::Error(where, field, ...) when arrays and objects in `text` nest deeper than
// kMaxJsonDepth. Brackets inside strings do not count. Linear, no allocation.
void check_json_depth(std::string_view text, const std::string& where, const std::string& field);

// check_json_depth, then nlohmann::json::parse(text) with every library exception turned into
// moe::Error(where, field, "is not valid JSON: ...", hint). No parser callback: nlohmann 3.11's
// callback parser scans the parent object after every child object ends, quadratic in the
// number of children (a 49,000-tensor safetensors header took 45 s to read).
nlohmann::json parse_json_input(std::string_view text, const std::string& where, const std::string& field,
                                const std::string& hint);

// The first key that appears twice in one object of `text` (nlohmann keeps the last of them
// silently), or "" when there is none or `text` is not valid JSON. One SAX pass, linear.
std::string first_duplicate_key(std::string_view text);

// A JSON value for an error message: scalars as JSON, cut to about 40 characters; containers
// described ("an array of 3", "an object"), never dumped (dump() recurses).
std::string json_shown(const nlohmann::json& v);

// What a value is, for "is ..." in an error: integers as they are, otherwise its kind with the
// value shown ("a string (\"16\")", "a number with a fraction (1.9)", "an array of 3").
std::string json_described(const nlohmann::json& v);

// An integer field read exactly: a JSON integer (not 1.9, not 1e30, not "3") in [lo, hi], or
// moe::Error(where, field, "is <json_described>", "expected an integer in lo..hi; <hint>"): the
// one integer reader of every JSON input (model configs, HF config.json, lessons, resume files). nlohmann's
// get<int>() converts 1e30 with undefined behaviour and 4294967298 to 2 (issue 15, holes 5, 7).
int64_t json_integer(const nlohmann::json& v, const std::string& where, const std::string& field, int64_t lo, int64_t hi,
                     const std::string& hint);

}  // namespace moe
