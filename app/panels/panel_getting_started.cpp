// Getting started (Help menu; open on the first run): the first minute without the README.
// Three things to try, each a button that does it, and the lessons to pick from.
#include <imgui.h>

#include <string>
#include <vector>

#include "app/layout_dump.h"
#include "app/panels_lab.h"
#include "app/theme.h"

namespace moe::app {

void draw_getting_started(PanelContext& ctx) {
    ViewState& v = ctx.view;
    ImGui::PushFont(font_large());
    ImGui::TextWrapped("A Mixture-of-Experts model is running on the text below.");
    ImGui::PopFont();
    ImGui::TextWrapped(
        "Each byte of the text is a token. The router of every MoE layer sends each token to K of the %d experts; "
        "the Router panel shows where the current token goes, Expert load how busy each expert is.",
        v.knobs.router.n_experts);
    ImGui::Spacing();
    ImGui::TextWrapped("1. Press 4 (or click here): every token now goes to four experts. Watch the arcs, the "
                       "active parameters and the next-byte guess change.");
    if (ImGui::Button("K = 4")) v.knobs.router.k = std::min(4, v.knobs.router.n_experts);
    dump::item("start k4");
    ImGui::SameLine();
    if (ImGui::Button("back to K = 2")) v.knobs.router.k = std::min(2, v.knobs.router.n_experts);
    ImGui::TextWrapped("2. Press Right / Left to step through the tokens, Space to play.");
    ImGui::TextWrapped("3. Press S for the next routing scheme, or pick one in Controls; P for presenter mode.");
    ImGui::Spacing();
    ImGui::TextWrapped("Or follow a lesson: it sets the knobs for you and says where to look.");
    std::vector<std::string> files;
    const std::vector<std::string>& titles = lesson_titles(&files);
    for (size_t i = 0; i < titles.size() && i < files.size(); ++i) {
        // Wrapped, not a one-line Selectable: in the card's column at 1280x720 the titles ran past its edge.
        ImGui::Bullet();
        ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_ButtonHovered));
        ImGui::TextWrapped("%s", titles[i].c_str());
        ImGui::PopStyleColor();
        if (ImGui::IsItemHovered()) ImGui::SetMouseCursor(ImGuiMouseCursor_Hand);
        if (ImGui::IsItemClicked()) v.status = open_lesson_file(files[i], ctx);
        dump::item("start lesson " + std::to_string(i + 1));
    }
    ImGui::Spacing();
    ImGui::PushTextWrapPos(0.0f);  // one line ran past the card's right edge at 1280x720
    ImGui::TextDisabled("Help > Getting started brings this back; Help lists every key.");
    ImGui::PopTextWrapPos();
}

}  // namespace moe::app
