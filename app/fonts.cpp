// Script fonts merged for the glyphs the text needs (app/fonts.h).
//
// [SECTION] Font files
// [SECTION] What the text needs
// [SECTION] Building the atlas
// [SECTION] Drawing
#include "app/fonts.h"
#include "app/text_codec.h"

#include "core/text/utf8.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wshadow"
#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#include <stb/stb_truetype.h>
#pragma GCC diagnostic pop

namespace moe::app {

namespace {

// [SECTION] Font files
// Read once, kept for the life of the app: ImGui rasterises from these bytes at every rebuild
// (FontDataOwnedByAtlas = false), and the coverage checks read them.

struct FontFile {
    const char* path;
    const char* package;   // the Debian package that ships it, for the message when it is missing
    int font_no = 0;       // face inside a .ttc
    bool tried = false, ok = false;
    std::vector<unsigned char> data;
    stbtt_fontinfo info{};

    FontFile(const char* p, const char* pkg) : path(p), package(pkg) {}
    bool load() {
        if (tried) return ok;
        tried = true;
        std::FILE* f = std::fopen(path, "rb");
        if (f == nullptr) return false;
        std::fseek(f, 0, SEEK_END);
        const long n = std::ftell(f);
        std::fseek(f, 0, SEEK_SET);
        if (n > 0 && n < (64L << 20)) {
            data.resize(static_cast<size_t>(n));
            if (std::fread(data.data(), 1, data.size(), f) != data.size()) data.clear();
        }
        std::fclose(f);
        if (data.empty()) return false;
        const int offset = stbtt_GetFontOffsetForIndex(data.data(), font_no);
        ok = offset >= 0 && stbtt_InitFont(&info, data.data(), offset) != 0;
        if (!ok) data.clear();
        return ok;
    }
    bool has(uint32_t cp) { return load() && stbtt_FindGlyphIndex(&info, static_cast<int>(cp)) != 0; }
};

FontFile& dejavu() {
    static FontFile f{"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core"};
    return f;
}
FontFile& noto_cjk() {
    // Face 0 of the collection is Noto Sans CJK JP; it covers the CJK Unified Ideographs, kana
    // and Hangul that Chinese, Japanese and Korean text uses.
    static FontFile f{"/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"};
    return f;
}
FontFile& symbola() {
    // Monochrome emoji and symbols (stb_truetype draws no colour fonts).
    static FontFile f{"/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf", "fonts-symbola"};
    return f;
}

FontFile& base_file(const char* path) {
    static std::map<std::string, FontFile> files;
    auto it = files.find(path);
    if (it == files.end()) it = files.emplace(path, FontFile{nullptr, "fonts-dejavu-core"}).first;
    it->second.path = it->first.c_str();
    return it->second;
}


// One code point at s[i] (core/text/utf8.h), advancing i; a byte that does not start a valid
// sequence gives U+FFFD and advances by one.
uint32_t next_code_point(std::string_view s, size_t& i) {
    if (utf8::valid_seq_len(s, i) == 0) {
        ++i;
        return 0xFFFD;
    }
    return static_cast<uint32_t>(utf8::next(s, i));
}

// [SECTION] What the text needs

// What the base ranges in theme.cpp already load from DejaVu.
bool in_base_ranges(uint32_t cp) {
    return (cp >= 0x20 && cp <= 0x17F) || (cp >= 0x370 && cp <= 0x52F) || (cp >= 0x2000 && cp <= 0x206F) ||
           (cp >= 0x2190 && cp <= 0x22FF) || cp == 0x2423 || (cp >= 0x2580 && cp <= 0x25FF);
}

struct Wanted {
    std::set<uint32_t> seen;                // every code point looked at once
    std::vector<uint32_t> from_dejavu;      // DejaVu has it, outside the base ranges
    std::vector<uint32_t> from_cjk;         // BMP, Noto Sans CJK
    std::vector<uint32_t> from_symbola;     // BMP, Symbola
    std::vector<uint32_t> astral;           // past U+FFFF, Symbola; drawn at its stand-in (text_codec.h)
    std::set<std::string> missing_packages;
    bool changed = false;

    // Glyph ranges (pairs, 0-terminated) that must outlive the atlas built from them.
    std::vector<ImWchar> dejavu_ranges, cjk_ranges, symbola_ranges;
    // Custom glyphs queued by merge_script_fonts, painted by finish_font_atlas.
    struct Custom {
        int rect = -1;
        uint32_t cp = 0;
        float scale = 1;
        int w = 0, h = 0;
    };
    std::vector<Custom> custom;
    int n_script_glyphs = 0;
};

Wanted& wanted() {
    static Wanted w;
    return w;
}

std::vector<ImWchar> ranges_of(std::vector<uint32_t> cps) {
    std::sort(cps.begin(), cps.end());
    std::vector<ImWchar> r;
    for (size_t i = 0; i < cps.size();) {
        size_t j = i;
        while (j + 1 < cps.size() && cps[j + 1] == cps[j] + 1) ++j;
        r.push_back(static_cast<ImWchar>(cps[i]));
        r.push_back(static_cast<ImWchar>(cps[j]));
        i = j + 1;
    }
    r.push_back(0);
    return r;
}

}  // namespace

void want_glyphs(std::string_view utf8) {
    Wanted& w = wanted();
    for (size_t i = 0; i < utf8.size();) {
        const auto b = static_cast<unsigned char>(utf8[i]);
        if (b < 0x80) {  // ASCII: always in the atlas; the common case stays a byte compare
            ++i;
            continue;
        }
        const uint32_t cp = next_code_point(utf8, i);
        if (cp == 0xFFFD || in_base_ranges(cp) || !w.seen.insert(cp).second) continue;
        if (cp >= kPrivateUseFirst && cp <= kPrivateUseLast) continue;  // the stand-ins' own range
        if (cp <= 0xFFFF && dejavu().has(cp)) {
            w.from_dejavu.push_back(cp);
        } else if (cp <= 0xFFFF && noto_cjk().has(cp)) {
            w.from_cjk.push_back(cp);
        } else if (symbola().has(cp)) {
            if (cp <= 0xFFFF) {
                w.from_symbola.push_back(cp);
            } else {
                if (stand_ins().of(cp) == 0) continue;  // 5,888 different ones in one run: the rest stay '?'
                w.astral.push_back(cp);
            }
        } else {
            // No installed font draws it: say which package would, when one is missing.
            for (FontFile* f : {&noto_cjk(), &symbola()})
                if (!f->load()) w.missing_packages.insert(f->package);
            continue;
        }
        w.changed = true;
    }
}

bool glyphs_changed() { return wanted().changed; }

int script_glyph_count() { return wanted().n_script_glyphs; }

std::string missing_font_packages() {
    std::string s;
    for (const std::string& p : wanted().missing_packages) s += (s.empty() ? "" : ", ") + p;
    return s;
}

// [SECTION] Building the atlas

void merge_script_fonts(ImFont* font, const char* base_path, float size_px) {
    Wanted& w = wanted();
    if (w.changed || w.dejavu_ranges.empty()) {
        // A new atlas: ranges from everything wanted so far (the old atlas was cleared).
        w.dejavu_ranges = ranges_of(w.from_dejavu);
        w.cjk_ranges = ranges_of(w.from_cjk);
        w.symbola_ranges = ranges_of(w.from_symbola);
        w.custom.clear();
        w.n_script_glyphs = 0;
        w.changed = false;
    }
    ImGuiIO& io = ImGui::GetIO();
    const auto merge = [&](FontFile& f, const std::vector<ImWchar>& ranges, size_t n) {
        if (n == 0 || !f.load()) return;
        ImFontConfig cfg;
        cfg.MergeMode = true;
        cfg.FontDataOwnedByAtlas = false;  // FontFile keeps the bytes
        cfg.FontNo = f.font_no;
        cfg.OversampleH = 1;
        cfg.OversampleV = 1;
        io.Fonts->AddFontFromMemoryTTF(f.data.data(), static_cast<int>(f.data.size()), size_px, &cfg, ranges.data());
        w.n_script_glyphs += static_cast<int>(n);
    };
    merge(dejavu(), w.dejavu_ranges, w.from_dejavu.size());
    merge(noto_cjk(), w.cjk_ranges, w.from_cjk.size());
    merge(symbola(), w.symbola_ranges, w.from_symbola.size());

    // Astral glyphs: a custom rectangle each, placed on the base font's baseline.
    if (w.astral.empty() || !symbola().load()) return;
    FontFile& base = base_file(base_path);
    int base_ascent = 0, descent = 0, gap = 0;
    float base_ascent_px = size_px * 0.8f;
    if (base.load()) {
        stbtt_GetFontVMetrics(&base.info, &base_ascent, &descent, &gap);
        base_ascent_px = static_cast<float>(base_ascent) * stbtt_ScaleForPixelHeight(&base.info, size_px);
    }
    const float scale = stbtt_ScaleForPixelHeight(&symbola().info, size_px);
    for (uint32_t cp : w.astral) {
        int x0 = 0, y0 = 0, x1 = 0, y1 = 0, advance = 0, lsb = 0;
        stbtt_GetCodepointBitmapBox(&symbola().info, static_cast<int>(cp), scale, scale, &x0, &y0, &x1, &y1);
        stbtt_GetCodepointHMetrics(&symbola().info, static_cast<int>(cp), &advance, &lsb);
        Wanted::Custom c;
        c.cp = cp;
        c.scale = scale;
        c.w = std::max(1, x1 - x0);
        c.h = std::max(1, y1 - y0);
        c.rect = io.Fonts->AddCustomRectFontGlyph(font, static_cast<ImWchar>(stand_ins().find(cp)), c.w, c.h,
                                                  static_cast<float>(advance) * scale,
                                                  ImVec2(static_cast<float>(x0), base_ascent_px + static_cast<float>(y0)));
        w.custom.push_back(c);
        ++w.n_script_glyphs;
    }
}

void finish_font_atlas() {
    Wanted& w = wanted();
    ImFontAtlas* atlas = ImGui::GetIO().Fonts;
    atlas->Build();
    // The editor's stand-ins for bytes that are not UTF-8 (text_codec.h) draw as U+FFFD.
    for (ImFont* font : atlas->Fonts)
        for (uint32_t b = 0; b < 256; ++b)
            font->AddRemapChar(static_cast<ImWchar>(kByteStandIn + b), static_cast<ImWchar>(0xFFFD));
    unsigned char* px = nullptr;
    int tex_w = 0, tex_h = 0;
    atlas->GetTexDataAsAlpha8(&px, &tex_w, &tex_h);
    for (const Wanted::Custom& c : w.custom) {
        const ImFontAtlasCustomRect* r = atlas->GetCustomRectByIndex(c.rect);
        if (r == nullptr || !r->IsPacked()) continue;
        stbtt_MakeCodepointBitmap(&symbola().info, px + static_cast<size_t>(r->Y) * static_cast<size_t>(tex_w) + r->X,
                                  c.w, c.h, tex_w, c.scale, c.scale, static_cast<int>(c.cp));
    }
}

// [SECTION] Drawing

std::string screen_text(std::string_view utf8) {
    want_glyphs(utf8);
    StandIns& table = stand_ins();
    if (table.size() == 0) return std::string(utf8);
    std::string out;
    out.reserve(utf8.size());
    for (size_t i = 0; i < utf8.size();) {
        const size_t at = i;
        const uint32_t cp = next_code_point(utf8, i);
        // An emoji with a glyph goes to its stand-in; a private-use character of the text itself
        // gets one too (no glyph: '?'), so it is never drawn as the emoji that took its place.
        uint32_t s = 0;
        if (cp > 0xFFFF) s = table.find(cp);
        else if (needs_stand_in(cp)) s = table.of(cp);
        if (s != 0) utf8::append(out, static_cast<char32_t>(s));
        else out.append(utf8.substr(at, i - at));
    }
    return out;
}

int missing_glyphs(const ImFont* font, std::string_view screen) {
    int n = 0;
    for (size_t i = 0; i < screen.size();) {
        const uint32_t cp = next_code_point(screen, i);
        if (cp >= 0x20 && (cp > 0xFFFF || font->FindGlyphNoFallback(static_cast<ImWchar>(cp)) == nullptr)) ++n;
    }
    return n;
}

}  // namespace moe::app
