// Small helpers shared by the visual panels (token strip, router, load bars, heatmap, counters,
// prediction): checking that a snapshot can be drawn, naming a token by its display piece,
// fitting text, and the "nothing to show" message. Header-only; the only state is the pieces cache and the draw report.
//
// [SECTION] Snapshot checks
// [SECTION] Display pieces
// [SECTION] Numbers
// [SECTION] Text that fits
// [SECTION] Draw report
// [SECTION] Lesson marks
// [SECTION] Messages
#pragma once

#include <imgui.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "app/fonts.h"
#include "app/panels.h"
#include "core/engine/routing.h"
#include "core/session.h"
#include "core/teach/format.h"
#include "core/text/tokenizer.h"
#include "core/text/utf8.h"

namespace moe::app {

// [SECTION] Snapshot checks

// The trace of view.layer, or null with `why` set to a sentence for the user when there is
// nothing sensible to draw (no tokens, layer out of range, a trace whose shapes disagree).
// Every panel goes through this so an odd snapshot draws a message instead of crashing.
inline const RoutingTrace* drawable_trace(const Snapshot& snap, int layer, const char** why) {
    *why = nullptr;
    if (snap.tokens.empty()) {
        *why = "Nothing routed yet: type some text in the text box.";
        return nullptr;
    }
    const auto& traces = snap.forward.traces;
    if (traces.empty()) {
        *why = "This model has no MoE layer in this run, so there is no routing to show.";
        return nullptr;
    }
    if (layer < 0 || layer >= static_cast<int>(traces.size())) {
        *why = "The chosen layer is not one of this model's MoE layers: pick another in the controls.";
        return nullptr;
    }
    const RoutingTrace& tr = traces[static_cast<size_t>(layer)];
    const int n_tokens = tr.n_tokens;
    const int n_experts = tr.n_experts;
    const bool shapes_ok =
        n_tokens > 0 && n_experts > 0 && n_tokens == static_cast<int>(snap.tokens.size()) &&
        tr.probs.rows() == n_tokens && tr.probs.cols() == n_experts &&
        tr.token_begin.size() == static_cast<size_t>(n_tokens) + 1 &&
        tr.token_begin.front() == 0 && tr.token_begin.back() == static_cast<int>(tr.pairs.size()) &&
        tr.expert_load.size() == static_cast<size_t>(n_experts) &&
        tr.expert_wanted.size() == static_cast<size_t>(n_experts) &&
        tr.expert_dropped.size() == static_cast<size_t>(n_experts);
    if (!shapes_ok) {
        *why = "This routing trace is incomplete (its sizes disagree), so it is not drawn.";
        return nullptr;
    }
    return &tr;
}

// view.cursor kept inside [0, n_tokens): the text may have shrunk since the cursor was set.
inline int clamped_cursor(const ViewState& view, int n_tokens) {
    if (n_tokens <= 0) return 0;
    if (view.cursor < 0) return 0;
    if (view.cursor >= n_tokens) return n_tokens - 1;
    return view.cursor;
}

// True when token t has at least one dropped pair; *all_dropped: it kept no expert at all.
inline bool token_has_drop(const RoutingTrace& tr, int t, bool* all_dropped) {
    bool any = false;
    bool all = true;
    for (const RoutedPair& p : tr.token_pairs(t)) {
        any = any || p.dropped;
        all = all && p.dropped;
    }
    if (all_dropped) *all_dropped = all;  // also true for a token with no pair (Expert Choice)
    return any;
}

// [SECTION] Bytes for the exports

// The byte view of the tokens, for the exports (core/teach): the bytes of the byte LM's tokens
// exactly; for another tokenizer, the first byte of each token's text. The panels name tokens
// by their display pieces instead (below).
inline std::vector<uint8_t> byte_tokens(const Snapshot& snap) {
    std::vector<uint8_t> bytes;
    bytes.reserve(snap.token_text.size());
    for (const std::string& piece : snap.token_text)
        bytes.push_back(piece.empty() ? uint8_t{0} : static_cast<uint8_t>(piece[0]));
    return bytes;
}

// [SECTION] Display pieces

// The tokenizer's display pieces of this snapshot's tokens (core/text/tokenizer.h), ready for
// ImGui (screen_text), and for each token whether its own bytes end inside a character. Every
// panel that names a token uses these (the strip, the router's token box, the heatmap's rows),
// computed once per snapshot, not per frame or per panel.
struct DisplayPieces {
    uint64_t generation = ~0ull;
    std::vector<std::string> screen;  // (n_tokens)
    std::vector<bool> partial;        // (n_tokens) the token's bytes end mid-character
};

inline const DisplayPieces& display_pieces(const Session& session, const Snapshot& snap) {
    static DisplayPieces p;
    if (p.generation == snap.generation && p.screen.size() == snap.tokens.size()) return p;
    p.generation = snap.generation;
    const std::vector<std::string> raw = session.model().tokenizer().display_pieces(snap.tokens);
    p.screen.assign(snap.tokens.size(), std::string());
    p.partial.assign(snap.tokens.size(), false);
    std::string pending;
    for (size_t t = 0; t < snap.tokens.size(); ++t) {
        p.screen[t] = screen_text(t < raw.size() ? raw[t] : std::string("?"));
        if (t < snap.token_text.size()) {
            pending += snap.token_text[t];
            p.partial[t] = utf8::incomplete_tail(pending) > 0;
            if (!p.partial[t]) pending.clear();
        }
    }
    return p;
}

// Token t's piece for a headline or tooltip: "<C3> (part of a character)" for a partial one.
inline std::string piece_label(const DisplayPieces& pc, int t) {
    if (t < 0 || static_cast<size_t>(t) >= pc.screen.size()) return {};
    std::string s = pc.screen[static_cast<size_t>(t)];
    if (pc.partial[static_cast<size_t>(t)]) s += " (part of a character, completed by a later token)";
    return s;
}

// The longest prefix of `s` (whole UTF-8 characters) that fits max_w at `size`, with "..." when
// cut: a long BPE piece in a narrow label column.
inline std::string fit_piece(ImFont* font, float size, float max_w, const std::string& s) {
    if (font->CalcTextSizeA(size, FLT_MAX, 0.0f, s.c_str()).x <= max_w) return s;
    const float dots = font->CalcTextSizeA(size, FLT_MAX, 0.0f, "...").x;
    size_t keep = 0;
    for (size_t i = 0; i < s.size();) {
        const size_t n = std::max<size_t>(1, utf8::valid_seq_len(s, i));
        const std::string head = s.substr(0, i + n);
        if (font->CalcTextSizeA(size, FLT_MAX, 0.0f, head.c_str()).x + dots > max_w) break;
        i += n;
        keep = i;
    }
    return s.substr(0, keep) + "...";
}

// [SECTION] Numbers

// core/teach/format.h's formatters into a caller's buffer: "1.23K", "46.7B", "1.50 GB".
inline void human_count(double v, char* out, size_t size) { std::snprintf(out, size, "%s", format_count(v).c_str()); }
inline void human_bytes(double v, char* out, size_t size) { std::snprintf(out, size, "%s", format_bytes(v).c_str()); }

// [SECTION] Text that fits
// Drawn text must never run past a panel edge (a projector shows every cut): shrink it a little,
// then wrap at word boundaries. Fit once, use the result for both layout and drawing.

struct FitText {
    float size = 0;    // font size to draw at
    float wrap = 0;    // wrap width to draw with (the box width)
    ImVec2 extent;     // (width, height) of the drawn block
};

// How `s` fits `max_w` at `size`: shrunk to at most `min_scale` of it first, then wrapped.
inline FitText fit_text(ImFont* font, float size, float max_w, const char* s, float min_scale = 0.8f) {
    FitText f;
    f.wrap = std::max(max_w, 1.0f);
    const float w = font->CalcTextSizeA(size, FLT_MAX, 0.0f, s).x;
    f.size = w > f.wrap && w > 0.0f ? std::max(size * min_scale, size * f.wrap / w) : size;
    f.extent = font->CalcTextSizeA(f.size, FLT_MAX, f.wrap, s);
    return f;
}

// Draws `s` at `pos` (top-left) per fit_text; returns the height used.
inline float draw_fit_text(ImDrawList* dl, ImFont* font, float size, ImVec2 pos, float max_w, ImU32 col,
                           const char* s, float min_scale = 0.8f) {
    const FitText f = fit_text(font, size, max_w, s, min_scale);
    dl->AddText(font, f.size, pos, col, s, nullptr, f.wrap);
    return f.extent.y;
}

// SameLine() only when an item `next_w` wide still fits on this row of the window; otherwise the
// next item starts a new line instead of running past the edge.
inline void same_line_if_fits(float next_w, float spacing = -1.0f) {
    const float sp = spacing < 0.0f ? ImGui::GetStyle().ItemSpacing.x : spacing;
    const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
    if (ImGui::GetItemRectMax().x + sp + next_w <= right) ImGui::SameLine(0.0f, sp);
}

// Width of a button labelled `label`, for same_line_if_fits().
inline float button_width(const char* label) {
    return ImGui::CalcTextSize(label).x + ImGui::GetStyle().FramePadding.x * 2.0f;
}

// Width of the teach() marker "(?)" with its spacing, to leave room for it.
inline float teach_marker_width() {
    return ImGui::CalcTextSize("(?)").x + ImGui::GetStyle().ItemSpacing.x;
}

// Wrapped text that leaves room for a teach() marker after its last line.
inline void text_wrapped_before_teach(const char* s) {
    const float wrap_x = ImGui::GetCursorPosX() + ImGui::GetContentRegionAvail().x - teach_marker_width();
    ImGui::PushTextWrapPos(wrap_x);
    ImGui::TextUnformatted(s);
    ImGui::PopTextWrapPos();
}

// [SECTION] Draw report
// What the panels drew on the last frame of --screenshot, one line each ("router lit E12 ..."),
// printed by main.cpp as "drawn ..." lines so tests check the picture against the trace.

struct DrawReport {
    bool on = false;
    std::vector<std::string> lines;
};

inline DrawReport& draw_report() {
    static DrawReport r;
    return r;
}

// printf-style line into the report; does nothing (not even format) when the report is off.
template <typename... Args>
void report_drawn(const char* fmt, Args... args) {
    if (!draw_report().on) return;
    char buf[256];
    std::snprintf(buf, sizeof buf, fmt, args...);
    draw_report().lines.emplace_back(buf);
}

// [SECTION] Lesson marks
// A lesson step's "look at" names a panel (outlined by main.cpp) and may name an expert or a
// token (ViewState::look_at_expert / look_at_token): each panel that draws that expert or token
// calls mark_look_at() with its rectangle, so the class sees which box the teacher means.

// The lesson's colour: the same green as the panel outline.
inline constexpr ImU32 kColorLookAt = IM_COL32(90, 230, 140, 255);

// A green frame a few pixels outside [a, b] and a small triangle above it pointing down at it;
// `what` ("router expert 3", "token 8") goes into the draw report for the tests.
inline void mark_look_at(ImDrawList* dl, const char* what, int index, ImVec2 a, ImVec2 b) {
    const float pad = 3.0f;
    dl->AddRect(ImVec2(a.x - pad, a.y - pad), ImVec2(b.x + pad, b.y + pad), kColorLookAt, 3.0f, 0, 3.0f);
    const float cx = (a.x + b.x) * 0.5f, top = a.y - pad - 2.0f, s = 7.0f;
    dl->AddTriangleFilled(ImVec2(cx - s, top - s * 1.4f), ImVec2(cx + s, top - s * 1.4f), ImVec2(cx, top), kColorLookAt);
    report_drawn("look_at %s %d %.1f %.1f %.1f %.1f", what, index, a.x, a.y, b.x - a.x, b.y - a.y);
}

// [SECTION] Messages

// A centred, wrapped, dimmed sentence in place of a panel's drawing.
inline void empty_message(const char* text) {
    const ImVec2 avail = ImGui::GetContentRegionAvail();
    const float wrap = avail.x > 60.0f ? avail.x * 0.85f : avail.x;
    const ImVec2 size = ImGui::CalcTextSize(text, nullptr, false, wrap);
    const ImVec2 pos = ImGui::GetCursorPos();
    ImGui::SetCursorPos(ImVec2(pos.x + (avail.x - size.x) * 0.5f,
                               pos.y + (avail.y > size.y ? (avail.y - size.y) * 0.4f : 0.0f)));
    ImGui::PushTextWrapPos(ImGui::GetCursorPos().x + wrap);
    ImGui::TextDisabled("%s", text);
    ImGui::PopTextWrapPos();
}

// The start of every trace panel: the trace of the chosen layer, or a message in its place and
// null when there is nothing to draw. A failed request is said once, in the status bar (main.cpp),
// not in every panel: the panels keep showing the last good result.
inline const RoutingTrace* begin_trace_panel(const Snapshot& snap, int layer) {
    const char* why = nullptr;
    const RoutingTrace* tr = drawable_trace(snap, layer, &why);
    if (tr == nullptr) empty_message(why);
    return tr;
}

}  // namespace moe::app
