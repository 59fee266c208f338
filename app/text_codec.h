// Any bytes through Dear ImGui's text editor, unchanged.
//
// Debian's Dear ImGui 1.86 holds text as 16-bit characters and ends it at a NUL. Given UTF-8
// with emoji (past U+FFFF), bytes that are not UTF-8 or a NUL, its editor shows '?' and, after
// the first edit anywhere, hands back U+FFFD (or a cut text) for them: typing one letter would
// damage the text. So the editor is given the text in a form it keeps exactly: every such
// character or byte becomes one private-use stand-in (a 3-byte BMP character), and what comes
// back is turned into the original bytes again.
//
// - An emoji or other character past U+FFFF, and a private-use character of the text itself
//   (U+E000-U+F8FF, which must not be mistaken for a stand-in), gets a stand-in from
//   U+E000-U+F6FF, assigned on first sight and kept for the run (the font atlas draws the
//   emoji's glyph at its stand-in: app/fonts.cpp).
// - A NUL or a byte that does not start a valid UTF-8 sequence b gets U+F700 + b (drawn as the
//   replacement character).
//
// OffsetMap maps byte offsets between a text and a rewritten copy of it (these stand-ins; the
// editor's soft line breaks).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace moe::app {

constexpr uint32_t kStandInFirst = 0xE000, kStandInLast = 0xF6FF;  // for characters
constexpr uint32_t kByteStandIn = 0xF700;                          // + the byte, for bytes
constexpr uint32_t kPrivateUseFirst = 0xE000, kPrivateUseLast = 0xF8FF;

// A character the 16-bit editor cannot keep as itself.
inline bool needs_stand_in(uint32_t cp) { return cp > 0xFFFF || (cp >= kPrivateUseFirst && cp <= kPrivateUseLast); }

class StandIns {
public:
    // The stand-in for `cp` (needs_stand_in), assigned now if it has none; 0 when all 5,888 are
    // taken (a text with that many different emoji).
    uint32_t of(uint32_t cp);
    // The stand-in `cp` already has, or 0.
    uint32_t find(uint32_t cp) const;
    // The character a stand-in stands for; 0 when `stand_in` is not an assigned one.
    uint32_t original(uint32_t stand_in) const;
    size_t size() const { return originals_.size(); }
    // Whether one more character could get a stand-in.
    bool full() const { return originals_.size() > kStandInLast - kStandInFirst; }

private:
    std::map<uint32_t, uint32_t> of_;
    std::vector<uint32_t> originals_;  // originals_[s - kStandInFirst]
};

// The one table the app draws and edits with.
StandIns& stand_ins();

// Byte offsets between a source string and a copy in which some pieces were replaced: each
// splice replaces the `src_len` bytes at `src` (0 for an insertion) by `dst_len` bytes.
class OffsetMap {
public:
    // Splices are added in increasing order of `src`, at most one per offset.
    void add(int src, int src_len, int dst_len);
    // The copy's offset of source offset `t`. An offset inside a replaced piece goes to the
    // start of its replacement; one at an insertion goes after it.
    int to_dst(int t) const;
    // The source offset of copy offset `s`; inside a replacement: the replaced piece's start.
    int to_src(int s) const;
    bool empty() const { return splices_.empty(); }
    size_t size() const { return splices_.size(); }

private:
    struct Splice {
        int src, src_len, dst, dst_len;
    };
    std::vector<Splice> splices_;
};

// `bytes` as the editor keeps it, and where its stand-ins are (`map`: bytes -> editor text).
// False when a character could not get a stand-in (StandIns::full): it is then left as it is
// and the editor must not write that text back.
bool encode_for_editor(std::string_view bytes, std::string& out, OffsetMap& map, StandIns& table = stand_ins());
// The original bytes of editor text (stand-ins replaced; everything else as it is).
std::string decode_from_editor(std::string_view shown, const StandIns& table = stand_ins());

}  // namespace moe::app
