// The Text panel: the text to route, typed or pasted (any bytes: each byte is one token), and
// how much of it the model actually sees.
//
// Dear ImGui 1.86's multi-line input cannot wrap lines, so the editor is given the text with
// soft line breaks: a '\n' the text does not have, put where TextWrapped would break the line
// (after the blanks, so a line ends at a word). Every frame the editor's buffer is compared with
// what it was given; the one edit between them (typed, deleted, pasted, cut) is applied to the
// text, and the text is wrapped again. The model, the settings and the clipboard only ever see
// the text. Dear ImGui's own undo would replay positions in a buffer that the wrapping changed,
// so the editor's undo is off and Ctrl+Z / Ctrl+Y walk this panel's history of the text.
// While the editor has the keyboard the shortcuts are off; the panel and the status bar say so.
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_internal.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "app/fonts.h"
#include "app/layout_dump.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"
#include "app/text_codec.h"
#include "app/undo.h"
#include "core/text/utf8.h"

namespace moe::app {

namespace {

// The text as the editor shows it: `text` with a stand-in for each character or byte Dear
// ImGui's 16-bit editor cannot keep (emoji, bytes that are not UTF-8: app/text_codec.h), then
// with a '\n' the text does not have at each place the line wraps.
struct Wrapped {
    std::string shown;
    OffsetMap stand_ins;  // text -> text with stand-ins
    OffsetMap breaks;     // text with stand-ins -> shown (one inserted '\n' each)
    bool editable = true; // every character that needs a stand-in has one

    // Byte offset in `shown` of text offset t; a caret on a break goes to the start of the line after.
    int to_shown(int t) const { return breaks.to_dst(stand_ins.to_dst(t)); }
    // Byte offset in the text of shown offset s (a soft break itself maps to the text after it).
    int to_text(int s) const { return stand_ins.to_src(breaks.to_src(s)); }
};

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Where the lines of `text` wrap at `width` pixels in the current font: ImGui's own word-wrap
// rule (the one TextWrapped draws with), the break placed after the blanks that end a line.
Wrapped wrap(const std::string& text, float width) {
    Wrapped w;
    std::string screen;
    w.editable = encode_for_editor(text, screen, w.stand_ins);
    ImFont* font = ImGui::GetFont();
    const float scale = ImGui::GetFontSize() / font->FontSize;
    const char* begin = screen.data();
    const char* end = begin + screen.size();
    w.shown.reserve(screen.size() + screen.size() / 16);
    size_t from = 0;  // screen[from..] is not in w.shown yet
    for (const char* line = begin; line < end;) {
        const char* line_end = static_cast<const char*>(std::memchr(line, '\n', static_cast<size_t>(end - line)));
        if (!line_end) line_end = end;
        for (const char* p = line; p < line_end;) {
            const char* cut = font->CalcWordWrapPositionA(scale, p, line_end, width);
            if (cut >= line_end) break;
            if (cut <= p) {  // not even one character fits: break after one anyway
                unsigned int c = 0;
                cut = p + std::max(1, ImTextCharFromUtf8(&c, p, line_end));
            }
            while (cut < line_end && is_blank(*cut)) ++cut;
            if (cut >= line_end) break;  // only blanks left: they stay at the end of this line
            const size_t at = static_cast<size_t>(cut - begin);
            w.breaks.add(static_cast<int>(at), 0, 1);
            w.shown.append(screen, from, at - from);
            w.shown += '\n';
            from = at;
            p = cut;
        }
        line = line_end + 1;
    }
    w.shown.append(screen, from, std::string::npos);
    return w;
}

// The length of the UTF-8 character before byte `at` / starting at byte `at`.
int char_before(const std::string& s, int at) {
    int i = at - 1;
    while (i > 0 && (static_cast<unsigned char>(s[static_cast<size_t>(i)]) & 0xC0) == 0x80) --i;
    return std::max(0, i);
}
int char_after(const std::string& s, int at) {
    if (at >= static_cast<int>(s.size())) return at;
    unsigned int c = 0;
    return at + std::max(1, ImTextCharFromUtf8(&c, s.data() + at, s.data() + s.size()));
}

bool same_text(const std::string& a, const std::string& b) { return a == b; }

struct TextUi {
    std::string text;             // what the model gets (ViewState::text_input, once the frame ends)
    Wrapped wrapped;              // what the editor was given, wrapped at `wrapped_for` pixels
    float wrapped_for = -1.0f;
    float width = -1.0f;          // this frame's wrap width
    bool focus = false;           // give the editor the keyboard next frame ("clear")
    int caret = 0;                // last frame's caret and selection, in `wrapped.shown`
    int sel_begin = 0, sel_end = 0;
    std::string buffer;           // the editor's buffer (wrapped.shown while it is not being edited)
    UndoHistory<std::string, bool (*)(const std::string&, const std::string&)> history{&same_text};
    double last_edit_s = -1e9;    // when the text was last edited
    int typed_to = -1;            // where the last typed character ended (-1: the last edit was not typing)
    double now_s = 0;
    bool replace = false;         // the text changed outside the editor while it was open
    bool editing = false;         // the editor has the keyboard
    std::string typed;            // stand-ins of characters typed since the last frame (editor_takes_char)
};

TextUi& ui() {
    static TextUi s;
    return s;
}

// The edit between what the editor was given (old) and its buffer now, as a text edit: the
// changed byte range of the text and what replaces it.
struct TextEdit {
    int begin = 0, end = 0;  // in the text
    std::string inserted;
    int caret = 0;           // in the text, after the edit
};

TextEdit find_edit(const TextUi& s, std::string_view now) {
    const std::string& old = s.wrapped.shown;
    const int n_old = static_cast<int>(old.size()), n_now = static_cast<int>(now.size());
    int p = 0;
    while (p < n_old && p < n_now && old[static_cast<size_t>(p)] == now[static_cast<size_t>(p)]) ++p;
    int q = 0;
    while (q < n_old - p && q < n_now - p && old[static_cast<size_t>(n_old - 1 - q)] == now[static_cast<size_t>(n_now - 1 - q)]) ++q;
    // Whole characters (the buffer is UTF-8 from the editor): a stand-in changed for another
    // shares its first bytes, and the inserted piece must decode as a whole.
    const auto continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
    while (p > 0 && p < n_old && continuation(old[static_cast<size_t>(p)])) --p;
    while (q > 0 && continuation(old[static_cast<size_t>(n_old - q)])) --q;
    TextEdit e;
    e.begin = s.wrapped.to_text(p);
    e.end = s.wrapped.to_text(n_old - q);
    e.inserted = decode_from_editor(now.substr(static_cast<size_t>(p), static_cast<size_t>(n_now - q - p)));
    if (e.inserted.empty() && e.begin == e.end && n_old - q > p) {
        // Only a soft break went (Backspace at the start of a wrapped line, Delete at the end of
        // one): it is not in the text, so take the character beyond it, as on an unwrapped line.
        if (s.caret > p) e.begin = char_before(s.text, e.begin);
        else e.end = char_after(s.text, e.end);
    }
    e.caret = e.begin + static_cast<int>(e.inserted.size());
    return e;
}

// The caret after going from text a to text b (undo, redo): the end of what changed.
int caret_after(const std::string& a, const std::string& b) {
    size_t p = 0;
    while (p < a.size() && p < b.size() && a[p] == b[p]) ++p;
    size_t q = 0;
    while (q < a.size() - p && q < b.size() - p && a[a.size() - 1 - q] == b[b.size() - 1 - q]) ++q;
    return static_cast<int>(b.size() - q);
}

void set_clipboard_from_text(const TextUi& s, int shown_a, int shown_b) {
    const int a = s.wrapped.to_text(std::min(shown_a, shown_b)), b = s.wrapped.to_text(std::max(shown_a, shown_b));
    if (b > a) ImGui::SetClipboardText(s.text.substr(static_cast<size_t>(a), static_cast<size_t>(b - a)).c_str());
}

int on_editor(ImGuiInputTextCallbackData* d) {
    TextUi& s = ui();
    const ImGuiIO& io = ImGui::GetIO();
    if (!s.typed.empty()) {  // typed characters Dear ImGui would not take (editor_takes_char)
        if (s.wrapped.editable) {
            if (d->HasSelection()) {
                const int a = std::min(d->SelectionStart, d->SelectionEnd);
                d->DeleteChars(a, std::abs(d->SelectionEnd - d->SelectionStart));
                d->CursorPos = a;
            }
            d->InsertChars(d->CursorPos, s.typed.data(), s.typed.data() + s.typed.size());
        }
        s.typed.clear();
    }
    const std::string_view now(d->Buf, static_cast<size_t>(d->BufTextLen));
    int caret = s.wrapped.to_text(d->CursorPos);
    int sel_a = s.wrapped.to_text(d->SelectionStart), sel_b = s.wrapped.to_text(d->SelectionEnd);
    bool rebuild = false;
    const bool ctrl = io.KeyCtrl && !io.KeyAlt;
    // Dear ImGui copied the buffer's selection, soft breaks included: the clipboard gets the text.
    if (ctrl && (ImGui::IsKeyPressed(GLFW_KEY_C, false) || ImGui::IsKeyPressed(GLFW_KEY_X, false)))
        set_clipboard_from_text(s, s.sel_begin, s.sel_end);
    const bool undo = ctrl && ImGui::IsKeyPressed(GLFW_KEY_Z) && !io.KeyShift;
    const bool redo = ctrl && (ImGui::IsKeyPressed(GLFW_KEY_Y) || (ImGui::IsKeyPressed(GLFW_KEY_Z) && io.KeyShift));
    if (s.replace) {
        s.replace = false;
        caret = sel_a = sel_b = static_cast<int>(s.text.size());
        rebuild = true;
    } else if (now != s.wrapped.shown) {
        const TextEdit e = find_edit(s, now);
        // Characters typed one after another are one undo step; anything else (a paste, a cut, a
        // deletion, typing elsewhere or after a pause) starts a new one.
        const bool typed = e.begin == e.end && !e.inserted.empty() && e.inserted.size() <= 4;
        if (!typed || e.begin != s.typed_to || s.now_s - s.last_edit_s > 1.0) s.history.observe(s.text);
        s.typed_to = typed ? e.caret : -1;
        s.last_edit_s = s.now_s;
        s.text.replace(static_cast<size_t>(e.begin), static_cast<size_t>(e.end - e.begin), e.inserted);
        caret = sel_a = sel_b = e.caret;
        rebuild = true;
    } else if (undo || redo) {
        s.history.observe(s.text);
        if (undo ? s.history.can_undo() : s.history.can_redo()) {
            const std::string before = s.text;
            s.text = undo ? s.history.undo() : s.history.redo();
            caret = sel_a = sel_b = caret_after(before, s.text);
            s.typed_to = -1;
            rebuild = true;
        }
    }
    if (rebuild || s.width != s.wrapped_for) {
        Wrapped w = wrap(s.text, s.width);
        s.wrapped_for = s.width;
        if (w.shown != now) {
            d->DeleteChars(0, d->BufTextLen);
            d->InsertChars(0, w.shown.data(), w.shown.data() + w.shown.size());
        }
        s.wrapped = std::move(w);
        d->CursorPos = s.wrapped.to_shown(caret);
        d->SelectionStart = s.wrapped.to_shown(sel_a);
        d->SelectionEnd = s.wrapped.to_shown(sel_b);
    }
    s.caret = d->CursorPos;
    s.sel_begin = d->SelectionStart;
    s.sel_end = d->SelectionEnd;
    return 0;
}

// While the editor pastes, it gets the clipboard with stand-ins (text_codec.h): Dear ImGui
// would make every emoji in it U+FFFD. The paste button and other fields get it as it is.
const char* (*g_clipboard_getter)(void*) = nullptr;
const char* clipboard_for_editor(void* user) {
    static std::string encoded;
    const char* raw = g_clipboard_getter ? g_clipboard_getter(user) : nullptr;
    if (raw == nullptr) return nullptr;
    OffsetMap unused;
    encode_for_editor(raw, encoded, unused);
    return encoded.c_str();
}

}  // namespace

bool editor_takes_char(unsigned int cp) {
    TextUi& s = ui();
    if (!s.editing || !needs_stand_in(cp) || cp > 0x10FFFF) return false;
    const uint32_t stand_in = stand_ins().of(cp);
    if (stand_in == 0) return false;
    std::string one;
    utf8::append(one, static_cast<char32_t>(cp));
    want_glyphs(one);  // the emoji's glyph joins the atlas before the next frame
    utf8::append(s.typed, static_cast<char32_t>(stand_in));
    return true;
}

void draw_text_input(PanelContext& ctx) {
    ViewState& v = ctx.view;
    TextUi& s = ui();
    s.now_s = ImGui::GetTime();
    const Snapshot& snap = ctx.snap;
    const size_t n_bytes = v.text_input.size();
    // Token counts come from the routed snapshot (the tokenizer's, BPE or bytes); while the text
    // is being routed only its bytes are known.
    const bool current = snap.text == v.text_input;
    const size_t n_routed = snap.tokens.size();
    if (!current)
        ImGui::Text("%zu bytes", n_bytes);
    else if (snap.n_tokens_total > n_routed)
        ImGui::TextColored(ImVec4(1.0f, 0.75f, 0.3f, 1.0f), "%zu bytes: routing the first %zu of %zu tokens", n_bytes,
                           n_routed, snap.n_tokens_total);
    else
        ImGui::Text("%zu bytes = %zu tokens", n_bytes, n_routed);
    if (current && n_routed == n_bytes)
        teach("This model reads bytes, not words: every byte is a token, so any language or binary works. "
              "Its context holds max_seq tokens; the rest is not routed.");
    else
        teach("The model's tokenizer splits the text into tokens (words, word pieces, bytes); each token "
              "is routed on its own. Its context holds max_seq tokens; the rest is not routed.");
    if (snap.text != v.text_input && ctx.session.busy()) {
        ImGui::SameLine();
        ImGui::TextDisabled("(routing...)");
    }

    const ImGuiID id = ImGui::GetID("##text");
    const bool was_active = ImGui::GetActiveID() == id;
    // Esc leaves the editor, keeping the text (Dear ImGui's own Esc would undo the typing).
    if (was_active && ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false)) ImGui::ClearActiveID();
    const bool editing = ImGui::GetActiveID() == id;
    const float buttons_h = ImGui::GetFrameHeightWithSpacing();
    const ImVec2 size(-1.0f, std::max(ImGui::GetTextLineHeight() * 2.0f, ImGui::GetContentRegionAvail().y - buttons_h));
    // The width a line may take: the box, less its padding, the scrollbar it may grow and a
    // space for the caret at a line's end.
    const ImGuiStyle& style = ImGui::GetStyle();
    const float box_w = size.x > 0 ? size.x : ImGui::GetContentRegionAvail().x;
    const float width = std::max(ImGui::GetFontSize() * 2.0f, box_w - style.FramePadding.x * 2.0f - style.ScrollbarSize -
                                                                   ImGui::CalcTextSize(" ").x * 2.0f);
    bool outside = false;
    if (v.text_input != s.text) {  // set outside the editor: a lesson, a session, paste, settings
        s.text = v.text_input;
        s.history.observe(s.text);
        outside = true;
        if (editing) s.replace = true;  // the editor owns its buffer: the callback replaces it
    }
    if (!editing && (outside || s.replace || s.wrapped_for != width || s.buffer != s.wrapped.shown)) {
        s.wrapped = wrap(s.text, width);
        s.wrapped_for = width;
        s.buffer = s.wrapped.shown;
        s.replace = false;
    }
    s.width = width;
    if (s.focus) ImGui::SetKeyboardFocusHere();
    s.focus = false;
    ImGuiIO& io = ImGui::GetIO();
    g_clipboard_getter = io.GetClipboardTextFn;
    io.GetClipboardTextFn = clipboard_for_editor;
    ImGui::InputTextMultiline("##text", &s.buffer, size,
                              ImGuiInputTextFlags_CallbackAlways | ImGuiInputTextFlags_NoUndoRedo |
                                  ImGuiInputTextFlags_NoHorizontalScroll |
                                  (s.wrapped.editable ? 0 : ImGuiInputTextFlags_ReadOnly),
                              on_editor);
    io.GetClipboardTextFn = g_clipboard_getter;
    s.editing = ImGui::GetActiveID() == id;
    dump::item("text box");
    if (dump::enabled()) {
        // For tests/e2e: how many lines the box shows, the widest against the room, sideways scroll.
        float widest = 0;
        int lines = 0;
        for (size_t a = 0; a <= s.buffer.size();) {
            const size_t b = std::min(s.buffer.find('\n', a), s.buffer.size());
            widest = std::max(widest, ImGui::CalcTextSize(s.buffer.data() + a, s.buffer.data() + b).x);
            ++lines;
            a = b + 1;
        }
        const ImGuiInputTextState* st = ImGui::GetInputTextState(id);
        char buf[160];
        std::snprintf(buf, sizeof buf, "lines=%d widest=%.0f room=%.0f scroll_x=%.0f editing=%d missing=%d bytes=%zu",
                      lines, widest, width + ImGui::CalcTextSize(" ").x * 2.0f, st ? st->ScrollX : 0.0f,
                      editing ? 1 : 0, missing_glyphs(ImGui::GetFont(), s.buffer), s.text.size());
        dump::fact("text box", buf);
    }
    v.text_input = s.text;
    if (!s.wrapped.editable) {
        ImGui::PushTextWrapPos(0.0f);
        ImGui::TextColored(ImVec4(1.0f, 0.75f, 0.3f, 1.0f),
                           "read-only: this run has met more than 5,888 different emoji or private-use characters");
        ImGui::PopTextWrapPos();
    }
    if (ImGui::Button("clear")) {
        v.text_input.clear();
        s.focus = true;
    }
    ImGui::SameLine();
    if (ImGui::Button("paste")) {
        if (const char* clip = ImGui::GetClipboardText()) v.text_input = clip;
    }
    teach_hover("Replace the text with the clipboard.");
    // Beside the buttons when it fits, else below them, wrapped (a 250-pixel column at 1024x768).
    const char* hint = editing ? "typing: keys go to the text, Esc leaves" : "click the text to edit";
    same_line_if_fits(ImGui::CalcTextSize(hint).x);
    ImGui::PushStyleColor(ImGuiCol_Text, editing ? ImVec4(1.0f, 0.8f, 0.3f, 1.0f) : ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::PushTextWrapPos(0.0f);
    ImGui::TextUnformatted(hint);
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
}

}  // namespace moe::app
