// Look and feel shared by every panel (app/theme.h).
//
// [SECTION] Expert colours
// [SECTION] Teaching tooltip
// [SECTION] Fonts
// [SECTION] Style
#include "app/theme.h"

#include <cstdio>

#include "app/fonts.h"
#include "core/teach/palette.h"

namespace moe::app {

// [SECTION] Expert colours
// One palette for the app and the exporters (core/teach/palette.h), so expert 3 looks the same on
// screen and in a saved PNG or SVG.

ImU32 expert_color(int expert, float alpha) {
    const Rgba c = moe::expert_color(expert);
    const float a = alpha < 0.0f ? 0.0f : (alpha > 1.0f ? 1.0f : alpha);
    return IM_COL32(c.r, c.g, c.b, static_cast<int>(a * 255.0f + 0.5f));
}

ImVec4 expert_color_vec(int expert, float alpha) {
    return ImGui::ColorConvertU32ToFloat4(expert_color(expert, alpha));
}

// [SECTION] Teaching tooltip

namespace {
void teaching_tooltip(const char* text) {
    ImGui::BeginTooltip();
    // About 35 em: a line length people read comfortably, in any font size.
    ImGui::PushTextWrapPos(ImGui::GetFontSize() * 35.0f);
    ImGui::TextUnformatted(text);
    ImGui::PopTextWrapPos();
    ImGui::EndTooltip();
}
}  // namespace

void teach(const char* text) {
    if (text == nullptr || *text == '\0') return;
    // Hovering the item itself teaches too, so the (?) is a hint, not the only way in.
    const bool item_hovered = ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled);
    // The marker goes on the next line when the row is full: never past the panel's edge.
    const float sp = ImGui::GetStyle().ItemSpacing.x;
    const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
    if (ImGui::GetItemRectMax().x + sp + ImGui::CalcTextSize("(?)").x <= right) ImGui::SameLine();
    ImGui::TextDisabled("(?)");
    if (item_hovered || ImGui::IsItemHovered()) teaching_tooltip(text);
}

void teach_hover(const char* text) {
    if (text == nullptr || *text == '\0') return;
    if (ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled)) teaching_tooltip(text);
}

// [SECTION] Fonts

namespace {
ImFont* g_font_large = nullptr;
ImFont* g_font_mono = nullptr;

constexpr const char* kSansPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
constexpr const char* kMonoPath = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";

// Latin + Latin-1 + Latin Extended-A, Cyrillic (the corpus has Russian), general punctuation
// (dashes, quotes, ellipsis), arrows, math operators and geometric shapes used in labels.
// Must outlive the font atlas, hence static storage.
constexpr ImWchar kGlyphRanges[] = {
    0x0020, 0x00FF,  // Basic Latin + Latin-1 Supplement (middle dot, multiplication sign)
    0x0100, 0x017F,  // Latin Extended-A
    0x0370, 0x03FF,  // Greek (sigma, epsilon, gamma in formulas)
    0x0400, 0x052F,  // Cyrillic + Cyrillic Supplement
    0x2000, 0x206F,  // General Punctuation
    0x2190, 0x21FF,  // Arrows
    0x2200, 0x22FF,  // Mathematical Operators
    0x2423, 0x2423,  // the open box the token views show for a space: in the atlas from the first
                     // frame (it came after, so a --frames 1 screenshot drew '?' for every space)
    0x2580, 0x259F,  // Block Elements (SentencePiece's word mark U+2581)
    0x25A0, 0x25FF,  // Geometric Shapes
    0xFFFD, 0xFFFD,  // the replacement character: bytes that are not UTF-8 (and the fallback glyph)
    0,
};

bool file_readable(const char* path) {
    std::FILE* f = std::fopen(path, "rb");
    if (f == nullptr) return false;
    std::fclose(f);
    return true;
}

// A TTF at `size_px`, or ImGui's built-in font scaled to about that size when the file is
// missing (Debian's fonts-dejavu-core not installed): the app must still start.
ImFont* add_font(const char* path, float size_px) {
    ImGuiIO& io = ImGui::GetIO();
    ImFontConfig cfg;
    cfg.OversampleH = 2;
    cfg.OversampleV = 1;
    if (file_readable(path)) {
        ImFont* f = io.Fonts->AddFontFromFileTTF(path, size_px, &cfg, kGlyphRanges);
        if (f != nullptr) return f;
    }
    std::fprintf(stderr, "moelab: font %s not found; using Dear ImGui's built-in font "
                         "(install fonts-dejavu-core for Cyrillic and sharper text)\n", path);
    ImFontConfig def;
    def.SizePixels = size_px;
    return io.Fonts->AddFontDefault(&def);
}
}  // namespace

void load_fonts(float scale) {
    if (!(scale > 0.25f && scale < 8.0f)) scale = 1.0f;  // a garbage DPI must not ask for 0 px fonts
    ImGuiIO& io = ImGui::GetIO();
    io.Fonts->Clear();
    // The first font added is ImGui's default for every widget. Each gets the CJK, emoji and
    // symbol glyphs the current text needs merged in (app/fonts.h).
    merge_script_fonts(add_font(kSansPath, 17.0f * scale), kSansPath, 17.0f * scale);
    g_font_large = add_font(kSansPath, 30.0f * scale);
    merge_script_fonts(g_font_large, kSansPath, 30.0f * scale);
    g_font_mono = add_font(kMonoPath, 19.0f * scale);
    merge_script_fonts(g_font_mono, kMonoPath, 19.0f * scale);
    finish_font_atlas();
    // The renderer backend rebuilds its texture from the atlas (main.cpp, after this call).
}

ImFont* font_large() { return g_font_large != nullptr ? g_font_large : ImGui::GetFont(); }
ImFont* font_mono() { return g_font_mono != nullptr ? g_font_mono : ImGui::GetFont(); }

// [SECTION] Style

void apply_style(bool presenter, float scale) {
    if (!(scale > 0.25f && scale < 8.0f)) scale = 1.0f;
    ImGuiStyle& style = ImGui::GetStyle();
    style = ImGuiStyle();  // ScaleAllSizes multiplies: start from the unscaled defaults
    ImGui::StyleColorsDark(&style);

    style.WindowRounding = 4.0f;
    style.FrameRounding = 3.0f;
    style.GrabRounding = 3.0f;
    style.ScrollbarRounding = 3.0f;
    style.TabRounding = 3.0f;
    style.WindowPadding = ImVec2(10.0f, 8.0f);
    style.FramePadding = ImVec2(6.0f, 4.0f);
    style.ItemSpacing = ImVec2(8.0f, 6.0f);
    style.ScrollbarSize = 16.0f;

    ImVec4* c = style.Colors;
    c[ImGuiCol_WindowBg] = ImVec4(0.09f, 0.09f, 0.11f, 1.00f);
    // Child regions (the token strip, the heatmap's rows) show the panel's own background and
    // keep their border: a filled child is another 0.1-0.2 screens of pixels per frame that
    // software GL shades for a colour 2% darker than the one behind it.
    c[ImGuiCol_ChildBg] = ImVec4(0.0f, 0.0f, 0.0f, 0.0f);
    c[ImGuiCol_TitleBg] = ImVec4(0.12f, 0.12f, 0.16f, 1.00f);
    c[ImGuiCol_TitleBgActive] = ImVec4(0.18f, 0.20f, 0.30f, 1.00f);
    c[ImGuiCol_Header] = ImVec4(0.22f, 0.26f, 0.40f, 0.80f);
    c[ImGuiCol_HeaderHovered] = ImVec4(0.28f, 0.34f, 0.52f, 0.90f);
    c[ImGuiCol_Button] = ImVec4(0.20f, 0.24f, 0.36f, 1.00f);
    c[ImGuiCol_ButtonHovered] = ImVec4(0.28f, 0.34f, 0.52f, 1.00f);
    c[ImGuiCol_FrameBg] = ImVec4(0.16f, 0.17f, 0.22f, 1.00f);
    c[ImGuiCol_PlotHistogram] = ImVec4(0.34f, 0.71f, 0.91f, 1.00f);  // sky blue, as expert 1

    if (presenter) {
        // A projector washes out greys: pure black, pure white text, visible borders.
        c[ImGuiCol_Text] = ImVec4(1.0f, 1.0f, 1.0f, 1.0f);
        c[ImGuiCol_TextDisabled] = ImVec4(0.78f, 0.78f, 0.78f, 1.0f);
        c[ImGuiCol_WindowBg] = ImVec4(0.0f, 0.0f, 0.0f, 1.0f);
        c[ImGuiCol_PopupBg] = ImVec4(0.05f, 0.05f, 0.05f, 0.98f);
        c[ImGuiCol_Border] = ImVec4(0.85f, 0.85f, 0.85f, 0.9f);
        c[ImGuiCol_FrameBg] = ImVec4(0.12f, 0.12f, 0.12f, 1.0f);
        c[ImGuiCol_TitleBg] = ImVec4(0.10f, 0.10f, 0.10f, 1.0f);
        c[ImGuiCol_TitleBgActive] = ImVec4(0.25f, 0.25f, 0.25f, 1.0f);
        c[ImGuiCol_Button] = ImVec4(0.25f, 0.25f, 0.25f, 1.0f);
        c[ImGuiCol_ButtonHovered] = ImVec4(0.40f, 0.40f, 0.40f, 1.0f);
        c[ImGuiCol_CheckMark] = ImVec4(1.0f, 1.0f, 1.0f, 1.0f);
        c[ImGuiCol_SliderGrab] = ImVec4(0.95f, 0.95f, 0.95f, 1.0f);
        style.WindowBorderSize = 2.0f;
        style.FrameBorderSize = 1.0f;
        style.ChildBorderSize = 1.0f;
        style.ScrollbarSize = 20.0f;
    }
    style.ScaleAllSizes(scale);
}

}  // namespace moe::app
