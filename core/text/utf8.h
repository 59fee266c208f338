// UTF-8 helpers shared by the tokenizer stages: validation that names the byte offset of the
// first bad sequence, code point iteration, and Rust's String::from_utf8_lossy (the decoders
// must replace invalid bytes exactly as the reference does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::utf8 {

// Length in bytes of the valid UTF-8 sequence starting at s[i] (1-4), or 0 if the bytes there
// are not a complete, valid sequence (overlong, surrogate, > U+10FFFF, truncated, stray byte).
size_t valid_seq_len(std::string_view s, size_t i);

// Offset of the first byte that does not start a valid sequence, or npos if s is valid UTF-8.
size_t first_invalid(std::string_view s);

// Throws moe::Error(where, "text", "invalid UTF-8 at byte offset N ...") if s is not valid.
void require_valid(std::string_view s, const std::string& where);

// Decodes the code point at s[i] (s must be valid there) and advances i past it.
char32_t next(std::string_view s, size_t& i);
void append(std::string& out, char32_t cp);

// Rust's String::from_utf8_lossy: each maximal invalid subsequence ("substitution of maximal
// subparts", Unicode §3.9) becomes one U+FFFD.
std::string lossy(std::string_view bytes);

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_white_space(char32_t cp);

// Number of bytes an incomplete but so-far valid sequence at the end of s occupies (0 if s
// ends on a character boundary or with bytes that can never become valid). For display.
size_t incomplete_tail(std::string_view s);

}  // namespace moe::utf8
