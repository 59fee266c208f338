#include "app/text_codec.h"

#include <algorithm>

#include "core/text/utf8.h"

namespace moe::app {

uint32_t StandIns::of(uint32_t cp) {
    if (const uint32_t s = find(cp)) return s;
    if (full()) return 0;
    const uint32_t s = kStandInFirst + static_cast<uint32_t>(originals_.size());
    originals_.push_back(cp);
    of_.emplace(cp, s);
    return s;
}

uint32_t StandIns::find(uint32_t cp) const {
    const auto it = of_.find(cp);
    return it == of_.end() ? 0 : it->second;
}

uint32_t StandIns::original(uint32_t stand_in) const {
    if (stand_in < kStandInFirst || stand_in - kStandInFirst >= originals_.size()) return 0;
    return originals_[stand_in - kStandInFirst];
}

StandIns& stand_ins() {
    static StandIns s;
    return s;
}

void OffsetMap::add(int src, int src_len, int dst_len) {
    int dst = src;
    if (!splices_.empty()) {
        const Splice& p = splices_.back();
        dst = src + (p.dst + p.dst_len) - (p.src + p.src_len);
    }
    splices_.push_back(Splice{src, src_len, dst, dst_len});
}

int OffsetMap::to_dst(int t) const {
    // The last splice that starts before t, or an insertion at t.
    auto it = std::lower_bound(splices_.begin(), splices_.end(), t,
                               [](const Splice& p, int v) { return p.src < v; });
    if (it != splices_.end() && it->src == t && it->src_len == 0) ++it;
    if (it == splices_.begin()) return t;
    const Splice& p = *(it - 1);
    if (t < p.src + p.src_len) return p.dst;
    return t + (p.dst + p.dst_len) - (p.src + p.src_len);
}

int OffsetMap::to_src(int s) const {
    auto it = std::lower_bound(splices_.begin(), splices_.end(), s,
                               [](const Splice& p, int v) { return p.dst < v; });
    if (it == splices_.begin()) return s;
    const Splice& p = *(it - 1);
    if (s < p.dst + p.dst_len) return p.src;
    return s - (p.dst + p.dst_len) + (p.src + p.src_len);
}

bool encode_for_editor(std::string_view bytes, std::string& out, OffsetMap& map, StandIns& table) {
    out.clear();
    map = OffsetMap();
    out.reserve(bytes.size());
    bool all = true;
    for (size_t i = 0; i < bytes.size();) {
        const size_t at = i;
        const size_t n = utf8::valid_seq_len(bytes, i);
        uint32_t stand_in = 0;
        if (n == 0 || bytes[i] == '\0') {
            stand_in = kByteStandIn + static_cast<unsigned char>(bytes[i]);
            ++i;
        } else {
            const uint32_t cp = static_cast<uint32_t>(utf8::next(bytes, i));
            if (needs_stand_in(cp)) {
                stand_in = table.of(cp);
                all = all && stand_in != 0;
            }
        }
        if (stand_in == 0) {
            out.append(bytes.substr(at, i - at));
            continue;
        }
        map.add(static_cast<int>(at), static_cast<int>(i - at), 3);
        utf8::append(out, static_cast<char32_t>(stand_in));
    }
    return all;
}

std::string decode_from_editor(std::string_view shown, const StandIns& table) {
    std::string out;
    out.reserve(shown.size());
    for (size_t i = 0; i < shown.size();) {
        const size_t at = i;
        if (utf8::valid_seq_len(shown, i) == 0) {  // not from the editor; kept as it is
            out += shown[i++];
            continue;
        }
        const uint32_t cp = static_cast<uint32_t>(utf8::next(shown, i));
        if (cp >= kByteStandIn && cp < kByteStandIn + 256) {
            out += static_cast<char>(cp - kByteStandIn);
        } else if (const uint32_t original = table.original(cp)) {
            utf8::append(out, static_cast<char32_t>(original));
        } else {
            out.append(shown.substr(at, i - at));
        }
    }
    return out;
}

}  // namespace moe::app
