// The Controls panel: every routing knob, each with a one-line teaching tooltip. Knobs only
// change view.knobs; the frame loop sends changes to the session, which validates them and
// reports a bad combination in the status line (the last good picture stays).
#include <imgui.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "app/layout_dump.h"
#include "app/panels.h"
#include "app/theme.h"

namespace moe::app {

namespace {

void section(const char* title) {
    ImGui::Spacing();
    ImGui::TextDisabled("%s", title);
    ImGui::Separator();
}

}  // namespace

void draw_controls(PanelContext& ctx) {
    ViewState& v = ctx.view;
    RouterConfig& r = v.knobs.router;
    const int n_experts = std::max(1, r.n_experts);
    const float label_w = ImGui::GetFontSize() * 7.5f;
    ImGui::PushItemWidth(std::max(80.0f, ImGui::GetContentRegionAvail().x - label_w));

    section("Routing");
    int scheme = static_cast<int>(r.scheme);
    if (ImGui::BeginCombo("scheme", scheme_label(r.scheme))) {
        for (int s = 0; s < kNumSchemes; ++s) {
            const bool selected = s == scheme;
            if (ImGui::Selectable(scheme_label(static_cast<Scheme>(s)), selected)) r.scheme = static_cast<Scheme>(s);
            dump::item(std::string("scheme option ") + scheme_name(static_cast<Scheme>(s)));
            if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", scheme_tooltip(static_cast<Scheme>(s)));
            if (selected) ImGui::SetItemDefaultFocus();
        }
        ImGui::EndCombo();
    }
    dump::item("scheme combo");
    teach(scheme_tooltip(r.scheme));

    ImGui::SliderInt("K", &r.k, 1, n_experts, "%d", ImGuiSliderFlags_AlwaysClamp);
    teach("Experts per token. Compute per token grows with K; the parameter count does not.");
    const int k_eff = effective_k(r);
    if (k_eff != r.k) {
        if (k_eff == 0) ImGui::TextDisabled("this scheme picks tokens per expert: K varies per token");
        else ImGui::TextDisabled("this scheme uses K = %d", k_eff);
    }

    ImGui::Checkbox("renormalise gates", &r.renormalize);
    teach("Top-K (GShard style): rescale the chosen probabilities to sum 1, so the output keeps its size.");
    ImGui::SliderFloat("routed scale", &r.routed_scaling, 0.1f, 4.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
    teach("Multiplies every routed gate; DeepSeek-V3 uses 2.5 to balance routed against shared experts.");

    section("Capacity");
    ImGui::SliderFloat("capacity", &r.capacity_factor, 0.25f, 4.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
    teach("Capacity factor: each expert takes at most cf x T x K / N tokens; the overflow is dropped.");
    static const char* const kDropLabels[] = {"dropless", "by position", "by score"};
    int drop = static_cast<int>(r.drop_policy);
    if (ImGui::Combo("dropping", &drop, kDropLabels, 3)) r.drop_policy = static_cast<DropPolicy>(drop);
    teach("Dropless: no limit (MegaBlocks). Position: early tokens win. Score: confident tokens win.");

    section("Noise and balance");
    ImGui::Checkbox("router noise", &r.add_noise);
    teach("Noisy top-K adds learned Gaussian noise while training so unused experts still get tried.");
    if (!r.add_noise) ImGui::BeginDisabled();
    ImGui::SliderFloat("noise scale", &r.noise_scale, 0.0f, 5.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
    teach("Multiplies the noise; 1 is the paper's setting, 0 switches it off.");
    if (!r.add_noise) ImGui::EndDisabled();
    ImGui::SliderFloat("jitter", &r.jitter_eps, 0.0f, 0.5f, "%.3f", ImGuiSliderFlags_AlwaysClamp);
    teach("Switch Transformer's jitter: multiply the router input by U(1-eps, 1+eps).");
    ImGui::SliderFloat("bias step", &r.bias_update_rate, 0.0f, 0.05f, "%.4f", ImGuiSliderFlags_AlwaysClamp);
    teach("Aux-loss-free balancing (DeepSeek-V3): gamma, how fast each expert's selection bias moves.");
    if (ImGui::Button("update bias once")) ctx.session.step_expert_bias();
    teach("One balancing step: b_i += gamma * sign(mean load - load_i). Busy experts get a lower bias, "
          "idle ones a higher. Only the Sigmoid + bias (DeepSeek-V3) scheme selects with the bias.");
    ImGui::SameLine();
    if (ImGui::Button("reset bias")) ctx.session.reset_expert_bias();
    teach("Back to the biases the model was loaded with.");
    if (v.layer < static_cast<int>(ctx.snap.expert_bias.size())) {
        const Vec& bias = ctx.snap.expert_bias[static_cast<size_t>(v.layer)];
        if (bias.size() > 0) ImGui::TextDisabled("bias range in this layer: %+.4f .. %+.4f", bias.minCoeff(), bias.maxCoeff());
    }
    ImGui::SliderInt("sinkhorn iters", &r.sinkhorn_iters, 1, 20, "%d", ImGuiSliderFlags_AlwaysClamp);
    teach("Sinkhorn routing: rounds of row/column normalisation that even out the expert load.");

    section("Groups");
    ImGui::SliderInt("groups", &r.n_groups, 1, n_experts, "%d", ImGuiSliderFlags_AlwaysClamp);
    teach("Group-limited routing: experts in equal groups (one per device); N must divide evenly.");
    ImGui::SliderInt("top groups", &r.topk_groups, 1, std::max(1, r.n_groups), "%d", ImGuiSliderFlags_AlwaysClamp);
    teach("Only the best groups are searched, which caps how many devices one token talks to.");

    section("Model");
    int layer = v.layer;
    const int n_layers = std::max(1, static_cast<int>(ctx.snap.forward.traces.size()));
    if (ImGui::SliderInt("layer", &layer, 0, n_layers - 1, "%d", ImGuiSliderFlags_AlwaysClamp)) v.layer = layer;
    teach("Which MoE layer the router, heatmap and load views show. Deeper layers specialise differently.");
    const bool has_shared = ctx.session.model().info().moe.n_shared > 0;
    if (!has_shared) ImGui::BeginDisabled();
    ImGui::Checkbox("shared experts", &v.knobs.shared_experts);
    if (!has_shared) ImGui::EndDisabled();
    teach(has_shared ? "Shared experts (DeepSeekMoE) see every token with weight 1, beside the routed ones. "
                       "Untick to run the routed experts alone and watch the prediction change."
                     : "Shared experts (DeepSeekMoE) see every token with weight 1; this model has none.");
    int seed = static_cast<int>(std::min<uint64_t>(r.seed, 1000000));
    if (ImGui::InputInt("seed", &seed)) r.seed = static_cast<uint64_t>(std::clamp(seed, 0, 1000000));
    teach("Every random draw (noise, jitter, GShard's second expert, hashing) comes from this seed.");

    int device = static_cast<int>(v.knobs.device);
    for (int d = 0; d < 2; ++d) {
        const Device dev = static_cast<Device>(d);
        const bool available = device_available(dev);
        if (!available) ImGui::BeginDisabled();
        if (ImGui::RadioButton(device_name(dev), device == d)) v.knobs.device = dev;
        if (!available) ImGui::EndDisabled();
        if (!available) teach(("Not available: " + device_unavailable_reason(dev) + ".").c_str());
        if (d == 0) ImGui::SameLine();
    }

    ImGui::Spacing();
    if (ImGui::Button("reset knobs")) {
        const int keep_layer = v.layer;
        const Device keep_device = v.knobs.device;  // the routing resets, not where it runs
        v.knobs = ctx.session.default_knobs();
        v.knobs.device = keep_device;
        v.layer = keep_layer;
    }
    teach("Back to the routing the model was trained with.");
    ImGui::SameLine();
    if (ImGui::Button("reset load")) ctx.session.reset_cumulative();
    teach("Start summing the per-expert load again from zero.");
    ImGui::PopItemWidth();
}

}  // namespace moe::app
