// Token strip: the routed tokens as the tokenizer's display pieces (a BPE piece of any width,
// whitespace made visible, a token that holds only part of a UTF-8 character shown as its bytes
// and underlined in amber up to the token that completes it), and under each token ALL of the experts it was sent
// to, in rank order: labelled chips for small K, and for large K (DeepSeek-V3 and Kimi K2 route
// to 8) the first choice labelled with a row of thin colour slivers for the others below it.
//
// [SECTION] Layout constants
// [SECTION] Playback row
// [SECTION] Strip
#include <imgui.h>

#include <algorithm>
#include <cfloat>
#include <cstdio>

#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"

namespace moe::app {

namespace {

// [SECTION] Layout constants

struct StripMetrics {
    ImFont* font = nullptr;
    float fs = 0;        // glyph font size
    float small = 0;     // hex byte and chip label size
    float char_w = 0;    // width of one mono glyph at fs
    float cell_w = 0;    // minimum cell width
    float glyph_h = 0, hex_h = 0, chip_h = 0, line_h = 0;
    int k = 1;           // experts shown per token (the trace's K; Soft routing: all, capped)
    int labelled = 1;    // how many of them get a labelled chip; the rest are stripes
    float sliver_h = 0;  // height of the row of unlabelled experts (0 when all are labelled)
    float experts_h = 0; // the whole expert stack under a token
};

// Up to 3 experts each get a labelled chip; past that the first keeps its label and the rest
// share one row of slivers side by side, so K = 8 costs a chip and a few pixels, not eight
// chips: the strip stays one readable line per row of text.
constexpr int kMaxLabelled = 3;
constexpr int kMaxShown = 16;  // Soft routing sends every token to all N: show the first 16

// max_h: the strip's visible height. A line taller than that (K = 8 at 1280x720) is drawn a
// little smaller, down to 75%, so one whole line of tokens and their experts stays in view.
StripMetrics strip_metrics(int k, float max_h, float scale = 1.0f) {
    StripMetrics m;
    m.font = font_mono();
    m.fs = m.font->FontSize * scale;
    m.small = m.fs * 0.62f;
    m.char_w = m.font->CalcTextSizeA(m.fs, FLT_MAX, 0.0f, "M").x;
    const float chip_text_w = m.font->CalcTextSizeA(m.small, FLT_MAX, 0.0f, "E00").x;
    m.cell_w = std::max(m.char_w * 1.7f, chip_text_w + 6.0f);
    m.glyph_h = m.fs * 1.25f;
    m.hex_h = 0.0f;  // pieces carry their own bytes ("<E2 80>"): no separate hex row
    m.chip_h = m.small * 1.35f;
    m.k = std::clamp(k, 1, kMaxShown);
    m.labelled = m.k <= kMaxLabelled ? m.k : 1;
    m.sliver_h = m.k > m.labelled ? std::max(5.0f, m.small * 0.45f) : 0.0f;
    m.experts_h = m.chip_h * static_cast<float>(m.labelled) + m.sliver_h;
    m.line_h = m.glyph_h + m.hex_h + m.experts_h + m.fs * 0.45f;
    if (scale == 1.0f && m.line_h > max_h && max_h > 0.0f)
        return strip_metrics(k, max_h, std::max(0.75f, (max_h - 1.0f) / m.line_h));
    return m;
}

// Width of a token's cell: its piece, never narrower than the chip.
float cell_width(const StripMetrics& m, const std::string& screen_piece) {
    const float w = m.font->CalcTextSizeA(m.fs, FLT_MAX, 0.0f, screen_piece.c_str()).x + 6.0f;
    return std::max(m.cell_w, w);
}

// Black or white text, whichever reads better on `bg`.
ImU32 text_on(ImU32 bg) {
    const ImVec4 c = ImGui::ColorConvertU32ToFloat4(bg);
    const float lum = 0.299f * c.x + 0.587f * c.y + 0.114f * c.z;
    return lum > 0.5f ? IM_COL32(0, 0, 0, 255) : IM_COL32(255, 255, 255, 255);
}

void set_cursor(ViewState& view, int t) {
    if (view.cursor != t) view.anim_t = 0.0f;  // restart the router's arcs for the new token
    view.cursor = t;
}

// [SECTION] Playback row

void playback_row(ViewState& view, int n_tokens, size_t n_tokens_total) {
    const int cur = clamped_cursor(view, n_tokens);
    if (ImGui::Button("|<")) { set_cursor(view, 0); view.playing = false; }
    ImGui::SameLine();
    if (ImGui::Button("<")) { set_cursor(view, std::max(0, cur - 1)); view.playing = false; }
    ImGui::SameLine();
    if (ImGui::Button(view.playing ? "Pause" : "Play ")) {
        if (!view.playing && cur >= n_tokens - 1) set_cursor(view, 0);  // replay from the start
        view.playing = !view.playing;
    }
    ImGui::SameLine();
    if (ImGui::Button(">")) { set_cursor(view, std::min(n_tokens - 1, cur + 1)); view.playing = false; }
    ImGui::SameLine();
    if (ImGui::Button(">|")) { set_cursor(view, n_tokens - 1); view.playing = false; }
    ImGui::SameLine();
    // The unit is the slider's label, beside it: inside the slider the moving grab covered it.
    // The grab is see-through: presenter mode's white grab hid the white number under it.
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 5.0f);
    for (ImGuiCol c : {ImGuiCol_SliderGrab, ImGuiCol_SliderGrabActive}) {
        ImVec4 col = ImGui::GetStyleColorVec4(c);
        col.w *= 0.45f;
        ImGui::PushStyleColor(c, col);
    }
    ImGui::SliderFloat("tokens/s", &view.play_speed, 0.5f, 30.0f, "%.1f", ImGuiSliderFlags_Logarithmic);
    ImGui::PopStyleColor(2);
    teach("Playback steps through the text one byte-token at a time, so you can watch where each "
          "one is routed. Click any token to jump to it.");
    char pos[48];
    std::snprintf(pos, sizeof pos, "token %d / %d", cur + 1, n_tokens);
    same_line_if_fits(ImGui::CalcTextSize(pos).x);
    ImGui::TextUnformatted(pos);
    if (n_tokens_total > static_cast<size_t>(n_tokens)) {
        char ctx_note[96];
        std::snprintf(ctx_note, sizeof ctx_note, "(first %d of %zu tokens: the model's context)", n_tokens, n_tokens_total);
        same_line_if_fits(ImGui::CalcTextSize(ctx_note).x);
        ImGui::TextDisabled("%s", ctx_note);
    }
}

// [SECTION] Strip

}  // namespace

void draw_token_strip(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    ViewState& view = ctx.view;
    const int n_tokens = static_cast<int>(snap.tokens.size());
    if (n_tokens == 0) {
        empty_message("Nothing routed yet: type some text in the text box. Each byte of it becomes "
                      "one token here.");
        return;
    }
    playback_row(view, n_tokens, snap.n_tokens_total);

    // The strip still shows the bytes when there is no usable trace (chips are then grey).
    const char* why = nullptr;
    const RoutingTrace* tr = drawable_trace(snap, view.layer, &why);
    const int cur = clamped_cursor(view, n_tokens);
    if (tr == nullptr && why != nullptr) ImGui::TextDisabled("%s", why);

    ImGui::BeginChild("##strip", ImVec2(0, 0), true);
    // As many expert rows as the most any token got in this trace (Expert Choice varies).
    int k_shown = 1;
    if (tr != nullptr)
        for (int t = 0; t < n_tokens; ++t) k_shown = std::max(k_shown, static_cast<int>(tr->token_pairs(t).size()));
    const StripMetrics m = strip_metrics(k_shown, ImGui::GetContentRegionAvail().y);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 origin = ImGui::GetCursorScreenPos();
    const ImVec2 clip0 = dl->GetClipRectMin(), clip1 = dl->GetClipRectMax();
    const float width = std::max(ImGui::GetContentRegionAvail().x, m.cell_w * 4.0f);
    const ImVec2 mouse = ImGui::GetMousePos();
    const bool hovered_win = ImGui::IsWindowHovered();
    int hovered_token = -1;
    float cursor_y = 0.0f;  // top of the current token's line, relative to origin

    float x = 0.0f, y = 0.0f;
    const DisplayPieces& pc = display_pieces(ctx.session, snap);
    float partial_x0 = -1.0f, partial_y = 0.0f;  // where the amber underline of a split character starts
    for (int t = 0; t < n_tokens; ++t) {
        const std::string& piece = pc.screen[static_cast<size_t>(t)];
        const float w = cell_width(m, piece);
        if (x > 0.0f && x + w > width) {  // wrap
            x = 0.0f;
            y += m.line_h;
            partial_x0 = partial_x0 >= 0.0f ? 0.0f : -1.0f;
        }
        const ImVec2 c0(origin.x + x, origin.y + y);
        const ImVec2 c1(c0.x + w, c0.y + m.glyph_h + m.hex_h + m.experts_h);
        if (t == cur) cursor_y = y;
        // Lines outside the scrolled view are laid out but not drawn: 1,000 tokens with 8
        // experts each would be 8,000 chips a frame.
        if (c0.y + m.line_h < clip0.y || c0.y > clip1.y) {
            if (pc.partial[static_cast<size_t>(t)] && partial_x0 < 0.0f) partial_x0 = x;
            if (!pc.partial[static_cast<size_t>(t)]) partial_x0 = -1.0f;
            x += w + 2.0f;
            continue;
        }
        {
            const int tok = t;
            if (tok == view.look_at_token) mark_look_at(dl, "token", tok, c0, c1);
            if (tok == cur) {
                dl->AddRectFilled(ImVec2(c0.x - 1, c0.y - 1), ImVec2(c1.x + 1, c1.y + 1),
                                  IM_COL32(255, 255, 255, 45), 3.0f);
                dl->AddRect(ImVec2(c0.x - 1, c0.y - 1), ImVec2(c1.x + 1, c1.y + 1),
                            IM_COL32(255, 255, 255, 255), 3.0f, 0, 2.0f);
            }
            if (hovered_win && mouse.x >= c0.x && mouse.x < c1.x + 2.0f && mouse.y >= c0.y &&
                mouse.y < c1.y) {
                hovered_token = tok;
                if (tok != cur) dl->AddRect(c0, c1, IM_COL32(200, 200, 200, 160), 3.0f);
            }

            // The piece: whitespace glyphs dimmed, bytes of a split character in amber, text white.
            const bool partial = pc.partial[static_cast<size_t>(tok)];
            const bool bytes_only = piece.size() >= 2 && piece.front() == '<' && piece.back() == '>';
            const bool blank = piece == "\xE2\x90\xA3" || piece == "\xE2\x86\xB5" || piece == "\xE2\x87\xA5";
            const ImU32 col = bytes_only ? IM_COL32(255, 190, 90, 255) : blank ? IM_COL32(150, 150, 160, 255)
                                                                               : IM_COL32(240, 240, 240, 255);
            const float tw = m.font->CalcTextSizeA(m.fs, FLT_MAX, 0.0f, piece.c_str()).x;
            dl->AddText(m.font, m.fs, ImVec2(c0.x + (w - tw) * 0.5f, c0.y + m.fs * 0.1f), col, piece.c_str());
            report_drawn("strip piece %d %.1f %.1f %.1f %.1f missing %d partial %d %s", tok, c0.x + (w - tw) * 0.5f,
                         c0.y + m.fs * 0.1f, tw, m.fs, missing_glyphs(m.font, piece), partial ? 1 : 0,
                         tok < static_cast<int>(snap.token_text.size()) ? snap.token_text[static_cast<size_t>(tok)].c_str() : "");
            // A character split over tokens: one amber line under all of them, up to the token
            // that completes it, so the bytes read as one character.
            if (partial && partial_x0 < 0.0f) partial_x0 = x;
            if (!partial && partial_x0 >= 0.0f) {
                const float uy = c0.y + m.glyph_h - 2.0f;
                dl->AddLine(ImVec2(origin.x + partial_x0 + 1.0f, uy), ImVec2(c1.x - 1.0f, uy), IM_COL32(255, 190, 90, 255), 2.0f);
                partial_x0 = -1.0f;
            }
            (void)partial_y;

            // The experts under the token, in rank order: chips labelled so colour is never the
            // only cue, then stripes. A dropped pair is faded with a red frame.
            const float ex_y = c0.y + m.glyph_h + m.hex_h;
            if (tr != nullptr) {
                bool all_dropped = false;
                const bool any_drop = token_has_drop(*tr, tok, &all_dropped);
                const auto pairs = tr->token_pairs(tok);
                if (pairs.empty()) {
                    dl->AddRectFilled(ImVec2(c0.x + 1.0f, ex_y), ImVec2(c1.x - 1.0f, ex_y + m.chip_h - 2.0f), kColorIdle);
                }
                const int n_show = std::min(static_cast<int>(pairs.size()), m.k);
                for (int r = 0; r < n_show; ++r) {
                    const RoutedPair& p = pairs[static_cast<size_t>(r)];  // the trace keeps rank order
                    const bool chip = r < m.labelled;
                    ImVec2 k0(c0.x + 1.0f, ex_y + m.chip_h * static_cast<float>(r)), k1(c1.x - 1.0f, k0.y + m.chip_h - 2.0f);
                    if (!chip) {
                        const float sw = (c1.x - c0.x - 2.0f) / static_cast<float>(m.k - m.labelled);
                        k0 = ImVec2(c0.x + 1.0f + sw * static_cast<float>(r - m.labelled), ex_y + m.chip_h * static_cast<float>(m.labelled) - 1.0f);
                        k1 = ImVec2(k0.x + std::max(sw - 0.5f, 1.0f), k0.y + m.sliver_h);
                    }
                    const ImU32 bg = expert_color(p.expert, p.dropped ? 0.35f : 1.0f);
                    // Square chips: a rounded one is ~40 anti-aliased triangles instead of 2, and
                    // a strip of 1,000 tokens x K chips was thousands of them every frame.
                    dl->AddRectFilled(k0, k1, bg);
                    if (p.dropped) dl->AddRect(k0, k1, kColorDropped, 0.0f, 0, 1.0f);
                    if (chip) {
                        char lab[12];
                        std::snprintf(lab, sizeof lab, "E%d", p.expert);
                        const float tw = m.font->CalcTextSizeA(m.small, FLT_MAX, 0.0f, lab).x;
                        dl->AddText(m.font, m.small, ImVec2((k0.x + k1.x - tw) * 0.5f, k0.y + m.small * 0.1f),
                                    p.dropped ? IM_COL32(255, 255, 255, 255) : text_on(bg), lab);
                    }
                    report_drawn("strip token %d rank %d E%d %.1f %.1f %.1f %.1f%s", tok, r, p.expert, k0.x, k0.y,
                                 k1.x - k0.x, k1.y - k0.y, p.dropped ? " dropped" : "");
                }
                // Dropped pairs: a red underline; a token that kept no expert is struck through.
                if (any_drop) {
                    const float uy = c0.y + m.glyph_h - 1.0f;
                    dl->AddLine(ImVec2(c0.x + 1, uy), ImVec2(c0.x + w - 1, uy), kColorDropped, 3.0f);
                }
                if (all_dropped && !pairs.empty()) {  // no pair at all (Expert Choice) is not a drop
                    const float sy = c0.y + m.glyph_h * 0.55f;
                    dl->AddLine(ImVec2(c0.x, sy), ImVec2(c0.x + w, sy), kColorDropped, 2.5f);
                }
            } else {
                dl->AddRectFilled(ImVec2(c0.x + 1.0f, ex_y), ImVec2(c1.x - 1.0f, ex_y + m.chip_h - 2.0f), kColorIdle);
            }
        }
        x += w + 2.0f;
    }
    const float total_h = y + m.line_h;
    ImGui::Dummy(ImVec2(width, total_h));

    if (hovered_token >= 0) {
        if (ImGui::IsMouseClicked(ImGuiMouseButton_Left)) {
            set_cursor(view, hovered_token);
            view.playing = false;
        }
        ImGui::BeginTooltip();
        ImGui::Text("Token %d: %s", hovered_token, pc.screen[static_cast<size_t>(hovered_token)].c_str());
        if (hovered_token < static_cast<int>(snap.tokens.size()))
            ImGui::TextDisabled("id %d, %zu byte%s%s", static_cast<int>(snap.tokens[static_cast<size_t>(hovered_token)]),
                                hovered_token < static_cast<int>(snap.token_text.size()) ? snap.token_text[static_cast<size_t>(hovered_token)].size() : 0u,
                                hovered_token < static_cast<int>(snap.token_text.size()) && snap.token_text[static_cast<size_t>(hovered_token)].size() == 1 ? "" : "s",
                                pc.partial[static_cast<size_t>(hovered_token)] ? ", ends inside a character (completed by a later token)" : "");
        if (tr != nullptr) {
            const auto pairs = tr->token_pairs(hovered_token);
            if (pairs.empty()) ImGui::TextDisabled("no expert picked this token (it passes through the residual)");
            for (const RoutedPair& p : pairs) {
                ImGui::TextColored(expert_color_vec(p.expert), "E%d", p.expert);
                ImGui::SameLine();
                if (p.dropped)
                    ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(kColorDropped),
                                       "gate %.2f  DROPPED (expert full)", p.gate);
                else
                    ImGui::Text("gate %.2f", p.gate);
            }
        }
        ImGui::TextDisabled("click to make it the current token");
        ImGui::EndTooltip();
    }

    // Keep the current token in view when it moves (playback, clicks elsewhere), not every frame,
    // so the user can still scroll away while paused.
    static int last_cursor = -1;
    if (cur != last_cursor) {
        last_cursor = cur;
        const float top = ImGui::GetScrollY();
        const float win_h = ImGui::GetWindowHeight();
        if (cursor_y < top || cursor_y + m.line_h > top + win_h)
            ImGui::SetScrollY(std::max(0.0f, cursor_y - win_h * 0.3f));
    }
    ImGui::EndChild();
}

}  // namespace moe::app
