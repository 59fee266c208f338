// The Text panel: the text to route, typed or pasted (any bytes: each byte is one token), and
// how much of it the model actually sees.
#include <imgui.h>
#include <imgui_stdlib.h>

#include "app/panels.h"
#include "app/theme.h"

namespace moe::app {

void draw_text_input(PanelContext& ctx) {
    ViewState& v = ctx.view;
    const Snapshot& snap = ctx.snap;
    const int max_seq = ctx.session.model().info().max_seq;
    const size_t n_wanted = v.text_input.size();

    if (n_wanted > static_cast<size_t>(max_seq))
        ImGui::TextColored(ImVec4(1.0f, 0.75f, 0.3f, 1.0f), "routing the first %d of %zu bytes", max_seq, n_wanted);
    else
        ImGui::Text("routing %zu bytes = %zu tokens", n_wanted, n_wanted);
    teach("This model reads bytes, not words: every byte is a token, so any language or binary works. "
          "Its context holds max_seq bytes; the rest is not routed.");
    if (snap.text != v.text_input && ctx.session.busy()) {
        ImGui::SameLine();
        ImGui::TextDisabled("(routing...)");
    }

    const ImVec2 size(-1.0f, std::max(ImGui::GetTextLineHeight() * 2.0f, ImGui::GetContentRegionAvail().y - ImGui::GetFrameHeightWithSpacing()));
    ImGui::InputTextMultiline("##text", &v.text_input, size);
    if (ImGui::Button("clear")) v.text_input.clear();
    ImGui::SameLine();
    if (ImGui::Button("paste")) {
        if (const char* clip = ImGui::GetClipboardText()) v.text_input = clip;
    }
    teach("Replace the text with the clipboard.");
}

}  // namespace moe::app
