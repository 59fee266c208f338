// Counters: a MoE model's size is not its per-token cost. For the loaded model: total vs active
// parameters, FLOPs per token against a dense model of the same total size, memory resident vs
// used per token. Then the gallery of famous models (assets/configs/*.json), counted the same way
// by core/teach/params.h.
//
// [SECTION] Counting the loaded model
// [SECTION] Gallery
// [SECTION] Drawing helpers
// [SECTION] Tabs
// [SECTION] Panel
#include <imgui.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "app/layout_dump.h"
#include "app/panels.h"
#include "app/panels/viz_common.h"
#include "app/theme.h"
#include "core/error.h"
#include "core/models/model.h"
#include "core/teach/params.h"

namespace moe::app {

namespace {

// [SECTION] Counting the loaded model

// The loaded model as the parameter counter describes it (ModelInfo::counted), at the current K
// and with shared experts on or off, so it is counted by exactly the same rules as Mixtral or DeepSeek-V3.
ModelConfig model_config_of(const ModelInfo& info, int64_t k, bool shared_on) {
    ModelConfig c = info.counted;
    c.k = std::clamp<int64_t>(k, 0, c.n_experts);
    if (!shared_on) c.n_shared = 0;
    return c;
}

struct LoadedCount {
    bool valid = false;
    int64_t k = -1;
    bool shared_on = false;
    const void* model = nullptr;  // which model it was counted for
    ParamReport report;           // with the current K and shared experts, f32 (what moelab runs)
    ParamReport full;             // with shared experts as stored (for the total)
    std::string error;
};

// The routed experts a token really gets under the current knobs; Expert Choice varies per token,
// so its mean over the batch (rounded) stands in. *note says so.
int64_t tokens_k(const Snapshot& snap, const RoutingTrace* tr, int n_experts, const char** note) {
    *note = nullptr;
    RouterConfig rc = snap.knobs.router;
    rc.n_experts = n_experts;
    if (rc.scheme == Scheme::ExpertChoice) {
        *note = "Expert Choice gives each token a varying number of experts: K here is the batch mean, rounded.";
        if (tr == nullptr || tr->n_tokens <= 0) return 1;
        const double kept = static_cast<double>(tr->stats.n_pairs - tr->stats.n_dropped);
        return std::max<int64_t>(0, std::llround(kept / tr->n_tokens));
    }
    return effective_k(rc);
}

// [SECTION] Gallery

struct GalleryEntry {
    std::string name;   // file stem, e.g. "mixtral-8x7b"
    ModelConfig cfg;
    ParamReport report;
    std::string error;  // non-empty: the file could not be read or counted
};

struct Gallery {
    bool loaded = false;
    std::vector<GalleryEntry> entries;
    std::string error;  // the folder itself could not be listed
};

Gallery load_gallery() {
    Gallery g;
    g.loaded = true;
    const std::filesystem::path dir = std::filesystem::path(MOE_ASSETS_DIR) / "configs";
    std::vector<std::filesystem::path> files;
    try {
        for (const auto& de : std::filesystem::directory_iterator(dir))
            if (de.is_regular_file() && de.path().extension() == ".json") files.push_back(de.path());
    } catch (const std::exception& e) {
        g.error = std::string("cannot list ") + dir.string() + ": " + e.what();
        return g;
    }
    for (const auto& f : files) {
        GalleryEntry ge;
        ge.name = f.stem().string();
        try {
            ge.cfg = load_model_config(f.string());
            ge.report = count_model_params(ge.cfg, "bf16");
        } catch (const std::exception& e) {
            ge.error = e.what();
        }
        g.entries.push_back(std::move(ge));
    }
    std::sort(g.entries.begin(), g.entries.end(), [](const GalleryEntry& a, const GalleryEntry& b) {
        if (a.error.empty() != b.error.empty()) return a.error.empty();
        return a.report.total_params < b.report.total_params;
    });
    return g;
}

// [SECTION] Drawing helpers

// A labelled horizontal bar `frac` of the available width, for "this vs that" comparisons. In a
// narrow panel (a 1280x720 window's bottom row) the label goes above the bar instead of beside it.
void compare_bar(const char* label, double value, double full, ImU32 col, const char* text) {
    const float fs = ImGui::GetFontSize();
    const float label_w = fs * 11.0f;
    const float text_w = ImGui::CalcTextSize(text).x + 8.0f;
    ImGui::TextUnformatted(label);
    if (ImGui::GetContentRegionAvail().x >= label_w + fs * 6.0f + text_w) ImGui::SameLine(label_w);
    const ImVec2 a = ImGui::GetCursorScreenPos();
    const float w = std::max(ImGui::GetContentRegionAvail().x - text_w, 20.0f);
    const float frac = full > 0 ? static_cast<float>(std::clamp(value / full, 0.0, 1.0)) : 0.0f;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddRectFilled(a, ImVec2(a.x + w, a.y + fs), IM_COL32(60, 60, 70, 255), 2.0f);
    dl->AddRectFilled(a, ImVec2(a.x + std::max(w * frac, 2.0f), a.y + fs), col, 2.0f);
    dl->AddText(ImVec2(a.x + w + 6.0f, a.y), IM_COL32(235, 235, 240, 255), text);
    ImGui::Dummy(ImVec2(w + text_w, fs));
}

// One line in the large font, shrunk (to 60%) and then wrapped to fit the panel's width.
void big_line(const char* s, ImU32 col) {
    ImFont* font = font_large();
    const float avail = ImGui::GetContentRegionAvail().x;
    const FitText f = fit_text(font, font->FontSize, avail, s, 0.6f);
    ImGui::GetWindowDrawList()->AddText(font, f.size, ImGui::GetCursorScreenPos(), col, s, nullptr, f.wrap);
    ImGui::Dummy(ImVec2(std::min(f.extent.x, avail), f.extent.y));
}

// [SECTION] Tabs

void draw_loaded_model(PanelContext& ctx, const LoadedCount& lc, int64_t k, const char* k_note, bool shared_on) {
    const ModelInfo& lm = ctx.session.model().info();
    text_wrapped_before_teach("The loaded model");
    teach("A Mixture-of-Experts model stores every expert but runs only K of them per token. So it has "
          "two sizes: the total (what must sit in memory) and the active part (what one token costs). "
          "Counted by the same rules as the famous models (next tab).");
    if (!lc.error.empty()) {
        ImGui::TextColored(ImVec4(1.0f, 0.5f, 0.4f, 1.0f), "Cannot count this model: %s", lc.error.c_str());
    } else {
        const ParamReport& r = lc.report;
        const double total = static_cast<double>(lc.full.total_params);
        const double active = static_cast<double>(r.active_params);
        char t1[32], t2[32];
        human_count(total, t1, sizeof t1);
        human_count(active, t2, sizeof t2);
        char big1[64], big2[64];
        std::snprintf(big1, sizeof big1, "%s total", t1);
        std::snprintf(big2, sizeof big2, "%s active per token", t2);
        // Both numbers on one line when they fit at full size, else one line each.
        ImGui::PushFont(font_large());
        const float both_w = ImGui::CalcTextSize(big1).x + ImGui::GetFontSize() * 1.5f + ImGui::CalcTextSize(big2).x;
        ImGui::PopFont();
        if (both_w <= ImGui::GetContentRegionAvail().x) {
            ImGui::PushFont(font_large());
            ImGui::TextUnformatted(big1);
            ImGui::SameLine(0.0f, ImGui::GetFontSize() * 1.5f);
            ImGui::TextColored(ImVec4(0.34f, 0.71f, 0.91f, 1.0f), "%s", big2);
            ImGui::PopFont();
        } else {
            big_line(big1, IM_COL32(255, 255, 255, 255));
            big_line(big2, IM_COL32(87, 181, 232, 255));
        }
        ImGui::TextWrapped("%d of %d experts per token (K = %lld)%s, %d MoE of %d layers", static_cast<int>(k), lm.moe.n_experts,
                    static_cast<long long>(k), lm.moe.n_shared > 0 ? (shared_on ? " + shared always on" : ", shared switched off") : "",
                    static_cast<int>(lm.moe_layer_index.size()), lm.n_layers);
        if (k_note != nullptr) {
            ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
            ImGui::TextWrapped("%s", k_note);
            ImGui::PopStyleColor();
        }

        const double frac = total > 0 ? active / total : 0.0;
        char b[96];
        std::snprintf(b, sizeof b, "%.1f%% of the weights work on each token", 100.0 * frac);
        // The sentence inside the bar when it fits; else the percentage inside, the words below.
        const bool in_bar = ImGui::CalcTextSize(b).x + ImGui::GetStyle().FramePadding.x * 4 <= ImGui::GetContentRegionAvail().x;
        char pct[16];
        std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * frac);
        ImGui::ProgressBar(static_cast<float>(frac), ImVec2(-1.0f, ImGui::GetFontSize() * 1.3f), in_bar ? b : pct);
        if (!in_bar) ImGui::TextWrapped("of the weights work on each token");

        ImGui::Spacing();
        char f1[32], f2[32], txt[96];
        human_count(r.flops_per_token, f1, sizeof f1);
        human_count(lc.full.dense_same_total_flops_per_token, f2, sizeof f2);
        const double dense = lc.full.dense_same_total_flops_per_token;
        text_wrapped_before_teach("Compute per token (FLOPs, weights only)");
        teach("2 FLOPs per weight a token is multiplied by. A dense model with as many weights as this MoE "
              "in total would multiply every token by all of them.");
        std::snprintf(txt, sizeof txt, "%s", f1);
        compare_bar("this MoE", r.flops_per_token, dense, IM_COL32(86, 180, 233, 255), txt);
        std::snprintf(txt, sizeof txt, "%s", f2);
        compare_bar("dense, same total", dense, dense, IM_COL32(150, 150, 160, 255), txt);
        if (r.flops_per_token > 0)
            ImGui::TextWrapped("MoE does %.1fx less work per token than a dense model of the same size.", dense / r.flops_per_token);

        ImGui::Spacing();
        char m1[32], m2[32];
        human_bytes(lc.full.resident_bytes, m1, sizeof m1);
        human_bytes(active * r.bytes_per_param, m2, sizeof m2);
        text_wrapped_before_teach("Memory (float32 weights)");
        teach("All experts must stay in memory because the next token may pick any of them; only the "
              "active ones are read for one token. Serving memory follows the total, not the active count.");
        compare_bar("kept in memory", lc.full.resident_bytes, lc.full.resident_bytes, IM_COL32(150, 150, 160, 255), m1);
        compare_bar("read per token", active * r.bytes_per_param, lc.full.resident_bytes, IM_COL32(86, 180, 233, 255), m2);

        char n1[32];
        human_count(static_cast<double>(ctx.session.model().n_params()), n1, sizeof n1);
        ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
        ImGui::TextWrapped("Weights in the file: %s (also counts the noisy-router projection and routing state, "
                           "which a model card leaves out).", n1);
        ImGui::PopStyleColor();
    }

}

void draw_gallery() {
    static Gallery gallery;
    text_wrapped_before_teach("Famous MoE models, counted from their config.json");
    teach("Each row is computed live from the model's published config.json by the same counter: the "
          "total is what must be stored, the active part what one token uses. Weights counted at 2 bytes "
          "(bf16).");
    same_line_if_fits(button_width("Reload"));  // below, in a 250-pixel panel (it ran past the edge)
    if (ImGui::SmallButton("Reload") || !gallery.loaded) gallery = load_gallery();
    if (!gallery.error.empty()) {
        ImGui::TextColored(ImVec4(1.0f, 0.5f, 0.4f, 1.0f), "%s", gallery.error.c_str());
        return;
    }
    if (gallery.entries.empty()) {
        ImGui::TextDisabled("No configs in %s/configs.", MOE_ASSETS_DIR);
        return;
    }
    // Wide: seven stretched columns. Narrow (a 1280x720 window's bottom row): four columns at
    // their text's width, scrolling sideways rather than cutting a name; the rest in the tooltip.
    const bool narrow = ImGui::GetContentRegionAvail().x < ImGui::GetFontSize() * 34.0f;
    const ImGuiTableFlags flags = ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV | ImGuiTableFlags_ScrollY |
                                  (narrow ? ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_ScrollX : ImGuiTableFlags_SizingStretchProp);
    if (ImGui::BeginTable("##gallery", narrow ? 4 : 7, flags,
                          ImVec2(0, std::max(ImGui::GetContentRegionAvail().y, ImGui::GetFontSize() * 8.0f)))) {
        ImGui::TableSetupScrollFreeze(1, 1);
        if (narrow) {
            ImGui::TableSetupColumn("model");
            ImGui::TableSetupColumn("total");
            ImGui::TableSetupColumn("active");
            ImGui::TableSetupColumn("K of N");
        } else {
            ImGui::TableSetupColumn("model", ImGuiTableColumnFlags_WidthStretch, 2.2f);
            ImGui::TableSetupColumn("total", ImGuiTableColumnFlags_WidthStretch, 1.0f);
            ImGui::TableSetupColumn("active", ImGuiTableColumnFlags_WidthStretch, 1.0f);
            ImGui::TableSetupColumn("active fraction", ImGuiTableColumnFlags_WidthStretch, 2.4f);
            ImGui::TableSetupColumn("experts", ImGuiTableColumnFlags_WidthStretch, 0.9f);
            ImGui::TableSetupColumn("K", ImGuiTableColumnFlags_WidthStretch, 0.5f);
            ImGui::TableSetupColumn("shared", ImGuiTableColumnFlags_WidthStretch, 0.8f);
        }
        ImGui::TableHeadersRow();
        for (const GalleryEntry& ge : gallery.entries) {
            ImGui::TableNextRow();
            ImGui::TableSetColumnIndex(0);
            ImGui::TextUnformatted(ge.name.c_str());
            if (!ge.error.empty()) {
                ImGui::TableSetColumnIndex(1);
                ImGui::TextColored(ImVec4(1.0f, 0.5f, 0.4f, 1.0f), "cannot count");
                if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", ge.error.c_str());
                continue;
            }
            const ParamReport& r = ge.report;
            char b[32];
            ImGui::TableSetColumnIndex(1);
            human_count(static_cast<double>(r.total_params), b, sizeof b);
            ImGui::TextUnformatted(b);
            ImGui::TableSetColumnIndex(2);
            human_count(static_cast<double>(r.active_params), b, sizeof b);
            ImGui::TextColored(ImVec4(0.34f, 0.71f, 0.91f, 1.0f), "%s", b);
            ImGui::TableSetColumnIndex(3);
            if (narrow) {
                ImGui::Text("%lld of %lld", static_cast<long long>(ge.cfg.k), static_cast<long long>(ge.cfg.n_experts));
            } else {
                std::snprintf(b, sizeof b, "%.1f%%", 100.0 * r.active_fraction);
                ImGui::ProgressBar(static_cast<float>(r.active_fraction), ImVec2(-1.0f, 0.0f), b);
            }
            if (ImGui::IsItemHovered()) {
                char f[32], m[32];
                human_count(r.flops_per_token, f, sizeof f);
                human_bytes(r.resident_bytes, m, sizeof m);
                ImGui::SetTooltip("%s (%s)\n%lld MoE + %lld dense layers\n%.1f%% of the weights active, %lld shared "
                                  "experts\n%s FLOPs per token\n%s resident in bf16",
                                  ge.name.c_str(), ge.cfg.model_type.c_str(), static_cast<long long>(r.n_moe_layers),
                                  static_cast<long long>(r.n_dense_layers), 100.0 * r.active_fraction,
                                  static_cast<long long>(ge.cfg.n_shared), f, m);
            }
            if (narrow) continue;
            ImGui::TableSetColumnIndex(4);
            ImGui::Text("%lld", static_cast<long long>(ge.cfg.n_experts));
            ImGui::TableSetColumnIndex(5);
            ImGui::Text("%lld", static_cast<long long>(ge.cfg.k));
            ImGui::TableSetColumnIndex(6);
            ImGui::Text("%lld", static_cast<long long>(ge.cfg.n_shared));
        }
        ImGui::EndTable();
    }
}

}  // namespace

// [SECTION] Panel

void draw_counters(PanelContext& ctx) {
    const Snapshot& snap = ctx.snap;
    const ViewState& view = ctx.view;
    const Model& model = ctx.session.model();
    const ModelInfo& lm = model.info();
    const char* why = nullptr;
    const RoutingTrace* tr = drawable_trace(snap, view.layer, &why);
    const char* k_note = nullptr;
    const int64_t k = tokens_k(snap, tr, lm.moe.n_experts, &k_note);
    const bool shared_on = snap.knobs.shared_experts && lm.moe.n_shared > 0;

    // Counted once per (model, K, shared) and kept: the report carries strings.
    static LoadedCount lc;
    if (!lc.valid || lc.k != k || lc.shared_on != shared_on || lc.model != &model) {
        lc = LoadedCount{};
        lc.k = k;
        lc.shared_on = shared_on;
        lc.model = &model;
        try {
            lc.report = count_model_params(model_config_of(lm, k, shared_on), "f32", lm.max_seq);
            lc.full = count_model_params(model_config_of(lm, k, true), "f32", lm.max_seq);
        } catch (const std::exception& e) {
            lc.error = e.what();
        }
        lc.valid = true;
    }

    // Two tabs, so the gallery is one click away instead of below the panel's bottom edge.
    // Short names where both do not fit (a 250-pixel panel beside a lesson or the getting-started
    // card at 1280x720): the tab bar counts the full names' width as the panel's content.
    const ImGuiStyle& style = ImGui::GetStyle();
    const bool short_tabs = ImGui::CalcTextSize("This modelFamous models").x + style.FramePadding.x * 4 +
                                style.ItemInnerSpacing.x * 2 >
                            ImGui::GetContentRegionAvail().x;
    if (!ImGui::BeginTabBar("##counters_tabs")) return;
    const bool this_model = ImGui::BeginTabItem(short_tabs ? "Model###This model" : "This model###This model");
    dump::item("tab This model");  // where the e2e test clicks (tests/e2e/drive_app.sh)
    if (this_model) {
        draw_loaded_model(ctx, lc, k, k_note, shared_on);
        ImGui::EndTabItem();
    }
    const bool famous = ImGui::BeginTabItem(short_tabs ? "Famous###Famous models" : "Famous models###Famous models");
    dump::item("tab Famous models");
    if (famous) {
        draw_gallery();
        ImGui::EndTabItem();
    }
    ImGui::EndTabBar();
}

}  // namespace moe::app
