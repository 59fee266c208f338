// The Text panel: the text to route, typed or pasted (any bytes: each byte is one token), and
// how much of it the model actually sees.
//
// Dear ImGui 1.86's multi-line input cannot wrap lines, so the box shows the text wrapped while
// nobody types in it; a click turns it into the editor (caret at the end), Esc turns it back.
// While the editor has the keyboard the shortcuts are off; the panel and the status bar say so.
#include <GLFW/glfw3.h>
#include <imgui.h>
#include <imgui_internal.h>
#include <imgui_stdlib.h>

#include "app/layout_dump.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"

namespace moe::app {

namespace {

struct TextUi {
    bool editing = false;       // the editor is shown (else the wrapped view)
    bool focus = false;         // give it the keyboard this frame
    bool caret_to_end = false;  // once, when editing starts
};

TextUi& ui() {
    static TextUi s;
    return s;
}

int caret_to_end(ImGuiInputTextCallbackData* data) {
    TextUi& s = ui();
    if (s.caret_to_end) {
        data->CursorPos = data->SelectionStart = data->SelectionEnd = data->BufTextLen;
        s.caret_to_end = false;
    }
    return 0;
}

}  // namespace

void draw_text_input(PanelContext& ctx) {
    ViewState& v = ctx.view;
    TextUi& s = ui();
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
    // Esc leaves the editor, keeping the text (Dear ImGui's own Esc would undo the typing).
    if (ImGui::GetActiveID() == id && ImGui::IsKeyPressed(GLFW_KEY_ESCAPE, false)) {
        ImGui::ClearActiveID();
        s.editing = false;
    }
    const float buttons_h = ImGui::GetFrameHeightWithSpacing();
    const ImVec2 size(-1.0f, std::max(ImGui::GetTextLineHeight() * 2.0f, ImGui::GetContentRegionAvail().y - buttons_h));
    if (s.editing) {
        if (s.focus) ImGui::SetKeyboardFocusHere();
        ImGui::InputTextMultiline("##text", &v.text_input, size, ImGuiInputTextFlags_CallbackAlways, caret_to_end);
        dump::item("text box");
        if (ImGui::IsItemDeactivated()) s.editing = false;  // clicked elsewhere, or Ctrl+Enter
        s.focus = false;
    } else {
        ImGui::PushStyleColor(ImGuiCol_ChildBg, ImGui::GetStyleColorVec4(ImGuiCol_FrameBg));
        ImGui::BeginChild("##wrapped", size, false);
        ImGui::PushTextWrapPos(0.0f);
        ImGui::TextUnformatted(v.text_input.empty() ? " " : v.text_input.c_str());
        ImGui::PopTextWrapPos();
        const bool hovered = ImGui::IsWindowHovered();
        if (hovered) ImGui::SetMouseCursor(ImGuiMouseCursor_TextInput);
        if (hovered && ImGui::IsMouseClicked(ImGuiMouseButton_Left)) s.editing = s.focus = s.caret_to_end = true;
        ImGui::EndChild();
        ImGui::PopStyleColor();
        dump::item("text box");
    }
    if (ImGui::Button("clear")) {
        v.text_input.clear();
        s.editing = s.focus = s.caret_to_end = true;
    }
    ImGui::SameLine();
    if (ImGui::Button("paste")) {
        if (const char* clip = ImGui::GetClipboardText()) v.text_input = clip;
    }
    teach_hover("Replace the text with the clipboard.");
    // Beside the buttons when it fits, else below them, wrapped (a 250-pixel column at 1024x768).
    const char* hint = s.editing ? "typing: keys go to the text, Esc leaves" : "click the text to edit";
    same_line_if_fits(ImGui::CalcTextSize(hint).x);
    ImGui::PushStyleColor(ImGuiCol_Text, s.editing ? ImVec4(1.0f, 0.8f, 0.3f, 1.0f) : ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::PushTextWrapPos(0.0f);
    ImGui::TextUnformatted(hint);
    ImGui::PopTextWrapPos();
    ImGui::PopStyleColor();
}

}  // namespace moe::app
