// The Controls panel: every routing knob, each with a one-line teaching tooltip. Knobs only
// change view.knobs; the frame loop sends changes to the session, which validates them and
// reports a bad combination in the status bar (the last good picture stays).
//
// A knob the current scheme ignores is not drawn: one dimmed line says which scheme uses it,
// so a click never "does nothing". Typed values outside a knob's range are clamped AND said.
//
// [SECTION] Which knobs a scheme uses
// [SECTION] Helpers
// [SECTION] Aux-loss-free bias, taught
// [SECTION] Panel
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "app/layout_dump.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"

namespace moe::app {

namespace {

// [SECTION] Which knobs a scheme uses
// (MOE_REFERENCE §2 and core/engine/routing.h: which RouterConfig fields each scheme reads.)
bool uses_k(Scheme s) {
    return s == Scheme::TopKMixtral || s == Scheme::TopKGShard || s == Scheme::NoisyTopK || s == Scheme::Hash ||
           s == Scheme::Sinkhorn || s == Scheme::SigmoidBias;
}
bool token_choice(Scheme s) { return s != Scheme::Soft && s != Scheme::ExpertChoice && s != Scheme::Base; }
bool uses_groups(Scheme s) {
    return s == Scheme::TopKMixtral || s == Scheme::TopKGShard || s == Scheme::NoisyTopK || s == Scheme::Switch ||
           s == Scheme::SigmoidBias || s == Scheme::Sinkhorn;
}

// [SECTION] Helpers
void section(const char* title) {
    ImGui::Spacing();
    ImGui::TextDisabled("%s", title);
    ImGui::Separator();
}

// The line that stands in for a knob the scheme does not use.
void unused(const char* knob, const char* why) {
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("%s: %s", knob, why);
    ImGui::PopStyleColor();
}

// A float slider whose typed value (Ctrl+click) is clamped to [lo, hi] with a sentence in the
// status line instead of silently.
bool slider_said(const char* label, float* v, float lo, float hi, const char* fmt, const char* what,
                 std::string& status) {
    const bool changed = ImGui::SliderFloat(label, v, lo, hi, fmt);
    if (changed && (!(*v >= lo) || !(*v <= hi))) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "%s %g is outside %g .. %g: set to %g", what, static_cast<double>(*v),
                      static_cast<double>(lo), static_cast<double>(hi), static_cast<double>(std::clamp(*v, lo, hi)));
        status = buf;
        *v = std::isfinite(*v) ? std::clamp(*v, lo, hi) : lo;
    }
    return changed;
}

// [SECTION] Aux-loss-free bias, taught
// One step moves every bias by +-gamma. Whether a step changes any choice depends on how close
// each token's K-th and (K+1)-th biased scores are; the load CV after each click shows whether
// the steps converge or overshoot.
struct BiasLesson {
    std::vector<float> cv;         // (n_clicks + 1) load CV of the shown layer: before, then after each click
    uint64_t waiting_after = 0;    // a click is waiting for a snapshot newer than this generation
    int layer = -1;
};

BiasLesson& bias_lesson() {
    static BiasLesson s;
    return s;
}

// Median over tokens of (K-th - (K+1)-th biased score): the smallest bias change that flips a
// typical token's last choice.
float median_margin(const RoutingTrace& tr, const Vec& bias, int k) {
    std::vector<float> margins;
    std::vector<float> row(static_cast<size_t>(tr.n_experts));
    for (int t = 0; t < tr.n_tokens; ++t) {
        for (int e = 0; e < tr.n_experts; ++e)
            row[static_cast<size_t>(e)] = tr.probs(t, e) + (e < bias.size() ? bias(e) : 0.0f);
        std::sort(row.begin(), row.end(), [](float a, float b) { return a > b; });
        if (k < tr.n_experts) margins.push_back(row[static_cast<size_t>(k - 1)] - row[static_cast<size_t>(k)]);
    }
    if (margins.empty()) return 0;
    std::nth_element(margins.begin(), margins.begin() + static_cast<std::ptrdiff_t>(margins.size() / 2), margins.end());
    return margins[margins.size() / 2];
}

void draw_bias(PanelContext& ctx) {
    ViewState& v = ctx.view;
    RouterConfig& r = v.knobs.router;
    BiasLesson& b = bias_lesson();
    const Snapshot& snap = ctx.snap;
    const int n_layers = static_cast<int>(snap.forward.traces.size());
    if (v.layer >= n_layers || v.layer >= static_cast<int>(snap.expert_bias.size())) return;
    const RoutingTrace& tr = snap.forward.traces[static_cast<size_t>(v.layer)];
    const Vec& bias = snap.expert_bias[static_cast<size_t>(v.layer)];
    if (b.layer != v.layer) {
        b = {};
        b.layer = v.layer;
    }
    if (b.cv.empty() && snap.error.empty()) b.cv.push_back(tr.stats.load_cv);
    if (b.waiting_after > 0 && snap.generation > b.waiting_after && !ctx.session.busy()) {
        b.cv.push_back(tr.stats.load_cv);
        b.waiting_after = 0;
    }

    slider_said("bias step", &r.bias_update_rate, 0.0f, 0.05f, "%.4f", "bias step", v.status);
    teach("Aux-loss-free balancing (DeepSeek-V3): gamma, how far each expert's selection bias moves per step.");
    if (ImGui::Button("update bias once")) {
        ctx.session.step_expert_bias();
        b.waiting_after = snap.generation;
    }
    teach("One balancing step: b_i += gamma * sign(mean load - load_i). Busy experts get a lower bias, idle "
          "ones a higher; the bias only changes which experts are picked, never the gate weights.");
    same_line_if_fits(button_width("reset bias"));
    if (ImGui::Button("reset bias")) {
        ctx.session.reset_expert_bias();
        b.cv.clear();
        b.waiting_after = snap.generation;
    }
    teach_hover("Back to the biases the model was loaded with.");

    // The bias vector: one bar per expert, up = favoured.
    if (bias.size() == tr.n_experts && tr.n_experts > 0) {
        float range = 1e-6f;
        for (int e = 0; e < bias.size(); ++e) range = std::max(range, std::fabs(bias(e)));
        const float w = ImGui::GetContentRegionAvail().x, h = ImGui::GetFrameHeight() * 1.6f;
        const ImVec2 p0 = ImGui::GetCursorScreenPos();
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const float bw = w / static_cast<float>(tr.n_experts), mid = p0.y + h * 0.5f;
        dl->AddLine(ImVec2(p0.x, mid), ImVec2(p0.x + w, mid), IM_COL32(120, 120, 130, 255));
        for (int e = 0; e < tr.n_experts; ++e) {
            const float y = mid - bias(e) / range * h * 0.45f;
            dl->AddRectFilled(ImVec2(p0.x + bw * static_cast<float>(e) + 2, std::min(mid, y)),
                              ImVec2(p0.x + bw * static_cast<float>(e + 1) - 2, std::max(mid, y) + 1), expert_color(e));
        }
        ImGui::Dummy(ImVec2(w, h));
        teach_hover("The selection bias of each expert in this layer (colour = expert), scaled to the largest.");
        char line[96];
        std::snprintf(line, sizeof line, "bias %+.4f .. %+.4f", static_cast<double>(bias.minCoeff()),
                      static_cast<double>(bias.maxCoeff()));
        ImGui::TextWrapped("%s", line);
    }
    // The CV after each click: converging, or overshooting.
    if (b.cv.size() > 1) {
        std::string hist = "load CV per click:";
        const size_t from = b.cv.size() > 8 ? b.cv.size() - 8 : 0;
        if (from > 0) hist += " ...";
        for (size_t i = from; i < b.cv.size(); ++i) {
            char num[16];
            std::snprintf(num, sizeof num, " %.2f", static_cast<double>(b.cv[i]));
            hist += num;
        }
        ImGui::TextWrapped("%s", hist.c_str());
        ImGui::PlotLines("##cv", b.cv.data(), static_cast<int>(b.cv.size()), 0, nullptr, 0.0f, FLT_MAX,
                         ImVec2(ImGui::GetContentRegionAvail().x, ImGui::GetFrameHeight() * 1.5f));
    }
    const int k = std::clamp(r.k, 1, std::max(1, tr.n_experts - 1));
    const float margin = median_margin(tr, bias, k);
    const double gamma = std::max(1e-6, static_cast<double>(r.bias_update_rate));
    char hint[320];
    if (margin > 0 && gamma < margin / 3)
        std::snprintf(hint, sizeof hint,
                      "A typical token's last choice leads the next by %.3f: at step %.4f it takes about %.0f clicks "
                      "before a choice flips. Try a step near %.3f.",
                      static_cast<double>(margin), gamma, std::ceil(margin / gamma), static_cast<double>(margin / 2));
    else
        std::snprintf(hint, sizeof hint,
                      "Step %.4f is as large as the typical margin between choices (%.3f): one click moves many "
                      "tokens at once, busy experts turn idle and the balance swings back and forth. Smaller steps "
                      "and more clicks converge.",
                      gamma, static_cast<double>(margin));
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("%s", hint);
    ImGui::PopStyleColor();
}

}  // namespace

// [SECTION] Panel
void draw_controls(PanelContext& ctx) {
    ViewState& v = ctx.view;
    RouterConfig& r = v.knobs.router;
    const Scheme scheme = r.scheme;
    const int n_experts = std::max(1, r.n_experts);
    const float label_w = ImGui::GetFontSize() * 8.5f;  // "routed scale (?)" on one row
    ImGui::PushItemWidth(std::max(80.0f, ImGui::GetContentRegionAvail().x - label_w));

    section("Routing");
    // The scheme names are long ("Sinkhorn-balanced top-K"): the combo gets the whole row.
    // When the full name does not fit the column, the preview drops its "(paper)" part.
    const float preview_w = ImGui::GetContentRegionAvail().x - ImGui::GetFrameHeight() - ImGui::GetStyle().FramePadding.x * 2;
    std::string preview = scheme_label(scheme);
    if (ImGui::CalcTextSize(preview.c_str()).x > preview_w && preview.find(" (") != std::string::npos)
        preview.resize(preview.find(" ("));
    ImGui::SetNextItemWidth(-1.0f);
    if (ImGui::BeginCombo("##scheme", preview.c_str())) {
        for (int s = 0; s < kNumSchemes; ++s) {
            const bool selected = s == static_cast<int>(scheme);
            if (ImGui::Selectable(scheme_label(static_cast<Scheme>(s)), selected)) r.scheme = static_cast<Scheme>(s);
            dump::item(std::string("scheme option ") + scheme_name(static_cast<Scheme>(s)));
            if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", scheme_tooltip(static_cast<Scheme>(s)));
            if (selected) ImGui::SetItemDefaultFocus();
        }
        ImGui::EndCombo();
    }
    dump::item("scheme combo");
    dump::text_fits("scheme combo", preview.c_str(), preview_w);
    teach_hover(scheme_tooltip(scheme));
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    ImGui::TextWrapped("%s", scheme_tooltip(scheme));
    ImGui::PopStyleColor();

    if (uses_k(scheme)) {
        ImGui::SliderInt("K", &r.k, 1, n_experts, "%d", ImGuiSliderFlags_AlwaysClamp);
        teach("Experts per token. Compute per token grows with K; the parameter count does not.");
    } else {
        const int k_eff = effective_k(r);
        char why[96];
        if (k_eff == 0) std::snprintf(why, sizeof why, "this scheme picks tokens per expert, so K varies per token");
        else std::snprintf(why, sizeof why, "this scheme always uses K = %d", k_eff);
        unused("K", why);
    }
    if (scheme == Scheme::TopKGShard) {
        ImGui::Checkbox("renormalise gates", &r.renormalize);
        teach("Top-K (GShard style): rescale the chosen probabilities to sum 1, so the output keeps its size.");
    }
    ImGui::SliderFloat("routed scale", &r.routed_scaling, 0.1f, 4.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
    teach("Multiplies every routed gate; DeepSeek-V3 uses 2.5 to balance routed against shared experts.");

    section("Capacity");
    const bool capacity_used = scheme == Scheme::ExpertChoice || (token_choice(scheme) && r.drop_policy != DropPolicy::Dropless);
    if (token_choice(scheme)) {
        static const char* const kDropLabels[] = {"dropless", "by position", "by score"};
        int drop = static_cast<int>(r.drop_policy);
        // Wide enough for its longest choice ("by position"), even when that pushes the label out
        // of the row: a cut "droples" in a 250-pixel column says nothing.
        const float combo_w = ImGui::CalcTextSize("by position").x + ImGui::GetFrameHeight() + ImGui::GetStyle().FramePadding.x * 2.0f;
        ImGui::SetNextItemWidth(std::max(ImGui::CalcItemWidth(), combo_w));
        if (ImGui::Combo("dropping", &drop, kDropLabels, 3)) r.drop_policy = static_cast<DropPolicy>(drop);
        teach("Dropless: no limit (MegaBlocks). Position: early tokens win. Score: confident tokens win.");
    } else {
        unused("dropping", scheme == Scheme::ExpertChoice ? "each expert takes its own top tokens, nothing overflows"
                                                          : "every expert's share is fixed by the scheme");
    }
    if (capacity_used) {
        slider_said("capacity", &r.capacity_factor, 0.25f, 4.0f, "%.2f", "capacity factor", v.status);
        teach(scheme == Scheme::ExpertChoice
                  ? "Expert Choice: each expert takes its top ceil(cf x T / N) tokens."
                  : "Capacity factor: each expert takes at most cf x T x K / N tokens; the overflow is dropped.");
    } else {
        unused("capacity", token_choice(scheme) ? "dropless routing has no limit; pick a dropping policy to use it"
                                                : "this scheme has no capacity limit");
    }

    section("Noise and balance");
    if (scheme == Scheme::NoisyTopK) {
        ImGui::Checkbox("router noise", &r.add_noise);
        teach("Noisy top-K adds learned Gaussian noise while training so unused experts still get tried.");
        if (!r.add_noise) ImGui::BeginDisabled();
        ImGui::SliderFloat("noise scale", &r.noise_scale, 0.0f, 5.0f, "%.2f", ImGuiSliderFlags_AlwaysClamp);
        teach("Multiplies the noise; 1 is the paper's setting, 0 switches it off.");
        if (!r.add_noise) ImGui::EndDisabled();
    } else {
        unused("router noise", "only Noisy top-K (Shazeer 2017) adds it");
    }
    ImGui::SliderFloat("jitter", &r.jitter_eps, 0.0f, 0.5f, "%.3f", ImGuiSliderFlags_AlwaysClamp);
    teach("Switch Transformer's jitter: multiply the router input by U(1-eps, 1+eps).");
    if (scheme == Scheme::SigmoidBias) draw_bias(ctx);
    else unused("expert bias", "only Sigmoid + bias (DeepSeek-V3) selects with it");
    if (scheme == Scheme::Sinkhorn) {
        ImGui::SliderInt("sinkhorn iters", &r.sinkhorn_iters, 1, 20, "%d", ImGuiSliderFlags_AlwaysClamp);
        teach("Sinkhorn routing: rounds of row/column normalisation that even out the expert load.");
    } else {
        unused("sinkhorn iters", "only Sinkhorn-balanced routing iterates");
    }

    section("Groups");
    if (uses_groups(scheme)) {
        ImGui::SliderInt("groups", &r.n_groups, 1, n_experts, "%d", ImGuiSliderFlags_AlwaysClamp);
        teach("Group-limited routing: experts in equal groups (one per device); N must divide evenly.");
        ImGui::SliderInt("top groups", &r.topk_groups, 1, std::max(1, r.n_groups), "%d", ImGuiSliderFlags_AlwaysClamp);
        teach("Only the best groups are searched, which caps how many devices one token talks to.");
    } else {
        unused("groups", "this scheme does not search experts by group");
    }

    section("Model");
    int layer = v.layer;
    const int n_layers = std::max(1, static_cast<int>(ctx.snap.forward.traces.size()));
    if (ImGui::SliderInt("layer", &layer, 0, n_layers - 1, "%d", ImGuiSliderFlags_AlwaysClamp)) v.layer = layer;
    teach("Which MoE layer the router, heatmap and load views show. Deeper layers specialise differently.");
    const bool has_shared = ctx.session.model().info().moe.n_shared > 0;
    if (has_shared) {
        ImGui::Checkbox("shared experts", &v.knobs.shared_experts);
        teach("Shared experts (DeepSeekMoE) see every token with weight 1, beside the routed ones. "
              "Untick to run the routed experts alone and watch the prediction change.");
    } else {
        unused("shared experts", "this model has none");
    }
    int seed = static_cast<int>(std::min<uint64_t>(r.seed, 1000000));
    if (ImGui::InputInt("seed", &seed)) {
        if (seed < 0 || seed > 1000000) v.status = "seed " + std::to_string(seed) + " is outside 0 .. 1000000: clamped";
        r.seed = static_cast<uint64_t>(std::clamp(seed, 0, 1000000));
    }
    teach("Every random draw (noise, jitter, GShard's second expert, hashing) comes from this seed.");

    int device = static_cast<int>(v.knobs.device);
    for (int d = 0; d < 2; ++d) {
        const Device dev = static_cast<Device>(d);
        const bool available = device_available(dev);
        if (!available) ImGui::BeginDisabled();
        if (ImGui::RadioButton(device_name(dev), device == d)) v.knobs.device = dev;
        if (!available) ImGui::EndDisabled();
        if (!available) teach(("Not available: " + device_unavailable_reason(dev) + ".").c_str());
        if (d == 0) same_line_if_fits(ImGui::GetFrameHeight() + ImGui::CalcTextSize(device_name(Device(1))).x + teach_marker_width() + 8.0f);
    }

    ImGui::Spacing();
    if (ImGui::Button("reset knobs")) {
        const int keep_layer = v.layer;
        const Device keep_device = v.knobs.device;  // the routing resets, not where it runs
        v.knobs = ctx.session.default_knobs();
        v.knobs.device = keep_device;
        v.layer = keep_layer;
    }
    teach("Back to the routing the model was trained with (Ctrl+Z undoes it).");
    same_line_if_fits(button_width("reset load") + teach_marker_width());
    if (ImGui::Button("reset load")) ctx.session.reset_cumulative();
    teach("Start summing the per-expert load again from zero.");
    ImGui::PopItemWidth();
}

}  // namespace moe::app
