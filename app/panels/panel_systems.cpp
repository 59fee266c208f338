// Systems panel (MOE_REFERENCE §6): the current snapshot's routing spread over G simulated
// devices (devices as columns, experts coloured on them, pairs crossing devices, all-to-all
// bytes per layer vs the formula), the memory-vs-compute sweep measured on this machine in the
// background, and the GUI exports (PNG / SVG / CSV, the same files as moelab-cli export).
//
// [SECTION] Exports
// [SECTION] State
// [SECTION] Expert parallelism
// [SECTION] Memory vs compute
// [SECTION] Panel
#include <imgui.h>

#include <algorithm>
#include <chrono>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <cstdlib>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "app/layout_dump.h"
#include "app/panels/viz_common.h"
#include "app/panels_lab.h"
#include "app/theme.h"
#include "core/error.h"
#include "core/teach/export.h"
#include "core/teach/systems.h"

namespace moe::app {

// [SECTION] Exports
std::string& export_folder() {
    static std::string dir = [] {
        const char* home = std::getenv("HOME");
        return std::string(home && *home ? home : ".") + "/moelab-exports";
    }();
    return dir;
}

void export_folder_field() {
    static char buf[512] = {};
    if (buf[0] == 0) std::snprintf(buf, sizeof(buf), "%s", export_folder().c_str());
    ImGui::SetNextItemWidth(std::max(100.0f, ImGui::GetContentRegionAvail().x - ImGui::CalcTextSize("export folder").x - 20));
    if (ImGui::InputText("export folder", buf, sizeof(buf))) export_folder() = buf;
    teach("Export buttons write here (created if missing): the same PNG/SVG/CSV files as moelab-cli export.");
}

void export_buttons(const char* id, const char* stem, const std::function<Plot()>& plot,
                    const std::function<std::string()>& csv, std::string& status) {
    ImGui::PushID(id);
    static const char* kExt[] = {"png", "svg", "csv"};
    static const char* kLabel[] = {"PNG", "SVG", "CSV"};
    for (int i = 0; i < 3; ++i) {
        if (i > 0) ImGui::SameLine();
        const bool clicked = ImGui::SmallButton(kLabel[i]);
        dump::item(std::string("export ") + id + " " + kLabel[i]);
        if (clicked) {
            const std::string dir = export_folder();
            const std::string path = dir + "/" + stem + "." + kExt[i];
            try {
                if (dir.empty()) throw Error("export", "folder", "is empty", "type a folder, e.g. ~/moelab-exports");
                // export_all makes the folder; a single format needs it too.
                std::error_code ec;
                std::filesystem::create_directories(dir, ec);
                if (ec) throw Error(dir, "export folder", "cannot be created: " + ec.message(), "pick a writable folder");
                export_file(plot(), csv(), path);
                status = "wrote " + path;
            } catch (const Error& e) {
                status = e.what();
            } catch (const std::exception& e) {
                status = std::string("export failed: ") + e.what();
            }
        }
    }
    if (!status.empty()) dump::message(std::string("export ") + id + ": " + status);  // for tests/e2e
    ImGui::PopID();
}

namespace {

// [SECTION] State
struct SystemsUi {
    int devices = 4;
    int placement = 0;           // Placement
    int dtype = 1;               // index into kDtypes
    std::future<ComputeSweep> pending;
    std::optional<ComputeSweep> sweep;
    std::string sweep_error;
    std::string status;          // export results
};

SystemsUi& ui() {
    static SystemsUi s;
    return s;
}

struct Dtype {
    const char* name;
    int bytes;
};
constexpr Dtype kDtypes[] = {{"fp32", 4}, {"bf16", 2}, {"fp8", 1}};

// [SECTION] Expert parallelism
void draw_devices(const RoutingTrace& tr, const ExpertPlacement& pl, const AllToAllTraffic& a) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const int g = pl.n_devices;
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    const float w = ImGui::GetContentRegionAvail().x;
    const float col_w = w / static_cast<float>(g);
    const float line = ImGui::GetTextLineHeightWithSpacing();
    int max_per_device = 0;
    for (int d = 0; d < g; ++d)
        max_per_device = std::max(max_per_device,
                                  static_cast<int>(std::count(pl.device_of_expert.begin(), pl.device_of_expert.end(), d)));
    const float box_h = line * 1.1f;
    const float col_h = line * 2.2f + box_h * static_cast<float>(max_per_device) + 4;
    for (int d = 0; d < g; ++d) {
        const float x0 = p0.x + col_w * static_cast<float>(d) + 3;
        const float x1 = x0 + col_w - 6;
        dl->AddRect(ImVec2(x0, p0.y), ImVec2(x1, p0.y + col_h), IM_COL32(150, 150, 160, 255), 4.0f);
        char head[48];
        std::snprintf(head, sizeof(head), "device %d", d);
        dl->AddText(ImVec2(x0 + 4, p0.y + 2), IM_COL32(230, 230, 230, 255), head);
        // Tokens living here, and how many of their pairs leave.
        int here = 0, leave = 0;
        for (int dst = 0; dst < g; ++dst) {
            here += a.pairs[static_cast<size_t>(d)][static_cast<size_t>(dst)];
            if (dst != d) leave += a.pairs[static_cast<size_t>(d)][static_cast<size_t>(dst)];
        }
        std::snprintf(head, sizeof(head), "%d pairs out, %d leave", here, leave);
        dl->AddText(ImVec2(x0 + 4, p0.y + 2 + line), leave > 0 ? kColorDropped : IM_COL32(160, 160, 160, 255), head);
        float y = p0.y + line * 2.2f;
        for (int e = 0; e < tr.n_experts; ++e) {
            if (pl.device_of_expert[static_cast<size_t>(e)] != d) continue;
            dl->AddRectFilled(ImVec2(x0 + 4, y), ImVec2(x1 - 4, y + box_h - 3), expert_color(e, 0.85f), 3.0f);
            char lab[48];
            std::snprintf(lab, sizeof(lab), "E%d  load %d", e, tr.expert_load[static_cast<size_t>(e)]);
            dl->AddText(ImVec2(x0 + 8, y + 1), IM_COL32(10, 10, 10, 255), lab);
            y += box_h;
        }
    }
    ImGui::Dummy(ImVec2(w, col_h + 4));
}

// Device-pair matrix: rows = where tokens live, columns = where their experts live.
void draw_pair_matrix(const AllToAllTraffic& a) {
    const int g = a.n_devices;
    if (ImGui::BeginTable("##pairs", g + 1, ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit)) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn();
        ImGui::TextDisabled("from \\ to");
        for (int d = 0; d < g; ++d) {
            ImGui::TableNextColumn();
            ImGui::Text("dev %d", d);
        }
        for (int s = 0; s < g; ++s) {
            ImGui::TableNextRow();
            ImGui::TableNextColumn();
            ImGui::Text("dev %d", s);
            for (int d = 0; d < g; ++d) {
                ImGui::TableNextColumn();
                const int v = a.pairs[static_cast<size_t>(s)][static_cast<size_t>(d)];
                if (s == d) ImGui::TextDisabled("%d", v);
                else ImGui::TextColored(v > 0 ? ImVec4(1.0f, 0.6f, 0.3f, 1.0f) : ImVec4(0.6f, 0.6f, 0.6f, 1.0f), "%d", v);
            }
        }
        ImGui::EndTable();
    }
}

void draw_parallel(PanelContext& ctx, SystemsUi& s) {
    const char* why = nullptr;
    const RoutingTrace* tr = drawable_trace(ctx.snap, ctx.view.layer, &why);
    if (!tr) {
        empty_message(why);
        return;
    }
    const int n_experts = tr->n_experts;
    s.devices = std::clamp(s.devices, 1, n_experts);
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 7);
    ImGui::SliderInt("devices G", &s.devices, 1, n_experts);
    teach("Expert parallelism: the N experts are spread over G GPUs; tokens live on the GPUs in equal slices.");
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    const char* placements[] = {placement_name(Placement::Contiguous), placement_name(Placement::RoundRobin)};
    ImGui::Combo("placement", &s.placement, placements, 2);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 5);
    const char* dtypes[] = {kDtypes[0].name, kDtypes[1].name, kDtypes[2].name};
    ImGui::Combo("dtype", &s.dtype, dtypes, 3);

    const int d_model = ctx.session.model().info().d_model;
    const ExpertPlacement pl = place_experts(n_experts, s.devices, static_cast<Placement>(s.placement));
    const AllToAllTraffic a = all_to_all_traffic(*tr, pl, d_model, kDtypes[s.dtype].bytes);
    draw_devices(*tr, pl, a);
    char measured[32], formula[32];
    human_bytes(a.total_bytes, measured, sizeof(measured));
    human_bytes(a.formula_bytes, formula, sizeof(formula));
    ImGui::Text("%d of %d kept pairs cross devices (%d of %d tokens send something away)", a.n_pairs_crossing, a.n_pairs,
                a.n_tokens_crossing, tr->n_tokens);
    ImGui::Text("all-to-all this layer: %s (dispatch + combine)   formula 2*T*K*d*bytes*(G-1)/G: %s", measured, formula);
    teach("The formula assumes experts chosen uniformly at random; real routing can send more or less across.");
    draw_pair_matrix(a);
    ImGui::TextUnformatted("Export:");
    ImGui::SameLine();
    export_buttons("traffic", "all_to_all_pairs", [&] { return bar_chart_plot(traffic_chart(a, "Pairs per device pair")); },
                   [&] { return bar_chart_csv(traffic_chart(a, "Pairs per device pair")); }, s.status);
    ImGui::SameLine();
    ImGui::TextUnformatted(" load:");
    ImGui::SameLine();
    export_buttons("load", "load", [&] { return load_plot(*tr, "Expert load, layer " + std::to_string(ctx.view.layer)); },
                   [&] { return load_csv(*tr); }, s.status);
    ImGui::SameLine();
    ImGui::TextUnformatted(" heatmap:");
    ImGui::SameLine();
    const auto rows = [&] { return token_rows(ctx.session.model().tokenizer(), ctx.snap.tokens); };
    export_buttons("heatmap", "heatmap", [&] { return heatmap_plot(*tr, rows(), "Gate probabilities"); },
                   [&] { return heatmap_csv(*tr, rows()); }, s.status);
}

// [SECTION] Memory vs compute
void draw_sweep_chart(const ComputeSweep& sw) {
    const LineChart c = compute_sweep_chart(sw);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 size(ImGui::GetContentRegionAvail().x, std::max(80.0f, ImGui::GetFontSize() * 9));
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    dl->AddRectFilled(p0, ImVec2(p0.x + size.x, p0.y + size.y), IM_COL32(25, 25, 30, 255));
    ImGui::Dummy(size);
    if (c.xs.size() < 2) return;
    // Room on the left and below for the axis numbers.
    const float axis_w = ImGui::CalcTextSize("10000").x + 6, axis_h = ImGui::GetTextLineHeight() + 2;
    // log10 of microseconds per token on y, log2 T on x.
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (const auto& ys : c.ys)
        for (float v : ys) {
            lo = std::min(lo, std::log10(std::max(v, 1e-6f)));
            hi = std::max(hi, std::log10(std::max(v, 1e-6f)));
        }
    if (hi - lo < 1e-3f) hi = lo + 1;
    const float x_lo = c.xs.front(), x_hi = c.xs.back();
    const ImU32 colors[] = {expert_color(0), IM_COL32(230, 230, 230, 255), IM_COL32(140, 140, 150, 255)};
    const float pad = 6;
    lo = std::floor(lo);
    hi = std::max(lo + 1, std::ceil(hi));  // whole powers of ten, so every decade gets a number
    const float gx0 = p0.x + axis_w, gx1 = p0.x + size.x - pad, gy0 = p0.y + pad, gy1 = p0.y + size.y - axis_h;
    auto to_screen = [&](float x, float log_y) {
        const float fx = (x - x_lo) / std::max(1e-6f, x_hi - x_lo);
        const float fy = (log_y - lo) / (hi - lo);
        return ImVec2(gx0 + fx * (gx1 - gx0), gy0 + (1 - fy) * (gy1 - gy0));
    };
    const ImU32 grid = IM_COL32(70, 70, 80, 255), ink = IM_COL32(200, 200, 200, 255);
    for (float d = lo; d <= hi + 0.01f; d += 1.0f) {
        const ImVec2 a = to_screen(x_lo, d);
        dl->AddLine(ImVec2(gx0, a.y), ImVec2(gx1, a.y), grid);
        char lab[16];
        std::snprintf(lab, sizeof lab, "%g", std::pow(10.0, static_cast<double>(d)));
        dl->AddText(ImVec2(p0.x + 2, a.y - ImGui::GetTextLineHeight() * 0.5f), ink, lab);
    }
    for (size_t i = 0; i < c.xs.size(); ++i) {
        const ImVec2 a = to_screen(c.xs[i], lo);
        char lab[16];
        std::snprintf(lab, sizeof lab, "%d", sw.points[i].n_tokens);
        dl->AddText(ImVec2(a.x - ImGui::CalcTextSize(lab).x * 0.5f, gy1 + 1), ink, lab);
    }
    for (size_t si = 0; si < c.ys.size(); ++si) {
        std::vector<ImVec2> pts;
        for (size_t i = 0; i < c.xs.size(); ++i) pts.push_back(to_screen(c.xs[i], std::log10(std::max(c.ys[si][i], 1e-6f))));
        dl->AddPolyline(pts.data(), static_cast<int>(pts.size()), colors[si], 0, 2.0f);
        for (const ImVec2& p : pts) dl->AddCircleFilled(p, 3, colors[si]);
    }
    for (size_t si = 0; si < c.names.size(); ++si) {
        ImGui::ColorButton(("##c" + std::to_string(si)).c_str(), ImGui::ColorConvertU32ToFloat4(colors[si]),
                           ImGuiColorEditFlags_NoTooltip, ImVec2(10, 10));
        ImGui::SameLine();
        ImGui::TextUnformatted(c.names[si].c_str());
    }
    ImGui::TextWrapped("x: tokens in the batch T (log scale)   y: microseconds per token (log scale)");
}

void draw_memory_compute(PanelContext& ctx, SystemsUi& s) {
    if (s.pending.valid() && s.pending.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        try {
            s.sweep = s.pending.get();
            s.sweep_error.clear();
        } catch (const Error& e) {
            s.sweep_error = e.what();
        }
    }
    const bool busy = s.pending.valid();
    ctx.view.keep_rendering = ctx.view.keep_rendering || busy;  // to pick the result up when it is ready
    ImGui::BeginDisabled(busy);
    if (ImGui::Button(busy ? "measuring..." : "Measure on this machine")) {
        ComputeSweepConfig cfg;
        const ModelInfo& mc = ctx.session.model().info();
        cfg.layer = mc.moe;
        cfg.k = std::clamp(ctx.view.knobs.router.k, 1, mc.moe.n_experts);
        cfg.reps = 2;
        // In the background: a sweep takes up to a couple of seconds on a busy machine.
        s.pending = std::async(std::launch::async, [cfg] { return measure_compute_sweep(cfg); });
    }
    ImGui::EndDisabled();
    teach("Times this model's MoE layer against dense FFNs with the same TOTAL and the same ACTIVE parameters, "
          "for T = 1 .. 1024 tokens: at small T the MoE reads all its experts for few tokens.");
    if (!s.sweep_error.empty()) ImGui::TextColored(ImVec4(1.0f, 0.45f, 0.35f, 1.0f), "%s", s.sweep_error.c_str());
    if (!s.sweep) return;
    const ComputeSweep& sw = *s.sweep;
    char total[32], active[32];
    human_count(static_cast<double>(sw.moe_total_params), total, sizeof(total));
    human_count(static_cast<double>(sw.moe_active_params), active, sizeof(active));
    ImGui::TextWrapped("MoE layer: %s parameters stored, %s used per token (measured in %.0f ms at K = %d)", total, active,
                       sw.wall_ms, sw.config.k);
    if (sw.config.k != std::clamp(ctx.view.knobs.router.k, 1, sw.config.layer.n_experts))
        ImGui::TextColored(ImVec4(1.0f, 0.8f, 0.3f, 1.0f), "K is %d now: measure again to see it", ctx.view.knobs.router.k);
    const int from = sparsity_pays_from(sw);
    if (from > 0)
        ImGui::TextColored(ImVec4(0.35f, 0.9f, 0.55f, 1.0f),
                           "Sparsity pays from T = %d: the MoE beats the dense FFN of the same total size", from);
    else
        ImGui::TextColored(ImVec4(1.0f, 0.8f, 0.3f, 1.0f),
                           "Within T <= %d the MoE never beats the dense FFN of the same total size here",
                           sw.points.back().n_tokens);
    draw_sweep_chart(sw);
    ImGui::TextUnformatted("Export:");
    ImGui::SameLine();
    const LineChart c = compute_sweep_chart(sw);
    export_buttons("sweep", "memory_vs_compute", [&] { return line_chart_plot(c); }, [&] { return line_chart_csv(c); },
                   s.status);
}

}  // namespace

// [SECTION] Panel
void draw_systems(PanelContext& ctx) {
    SystemsUi& s = ui();
    try {
        if (ImGui::CollapsingHeader("Expert parallelism: all-to-all traffic", ImGuiTreeNodeFlags_DefaultOpen))
            draw_parallel(ctx, s);
        if (ImGui::CollapsingHeader("Memory vs compute", ImGuiTreeNodeFlags_DefaultOpen)) draw_memory_compute(ctx, s);
    } catch (const Error& e) {
        s.status = e.what();
    }
    export_folder_field();
    if (!s.status.empty()) ImGui::TextWrapped("%s", s.status.c_str());
}

}  // namespace moe::app
