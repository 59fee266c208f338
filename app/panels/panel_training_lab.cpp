// Training lab: the 2D mixture of experts (core/models/mix2d.h) trains live, a few steps per frame within
// a time budget, the plane coloured by the router's top expert; loss, load CV and per-expert load
// curves; balancing toggles and the collapse / cure presets. Below, a short live fine-tune of the
// LM on the user's text, on a COPY of the model (loaded again from its file) in a background
// thread, so the session's model and the UI are never touched or blocked.
//
// [SECTION] 2D mixture state
// [SECTION] LM fine-tune state
// [SECTION] Drawing helpers
// [SECTION] Panel
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "app/gl_shaders.h"
#include "app/layout_dump.h"
#include "app/panels/viz_common.h"
#include "app/panels_lab.h"
#include "app/theme.h"
#include "core/error.h"
#include "core/teach/export.h"
#include "core/models/lm_train.h"
#include "core/models/mix2d.h"

namespace moe::app {

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kFrameBudgetMs = 6.0;  // training time per frame: the UI stays at 60 fps
// [SECTION] 2D mixture state
struct Mix2dLab {
    std::unique_ptr<Mix2dTrainer> trainer;
    TrainingCurves curves;
    Mix2dRegions regions;        // (48 x 48) the plane, refreshed every few steps
    int regions_step = -1;
    bool running = true;
    std::string status;          // errors from toggles and exports
    float alpha = 0.1f;
    float jitter = 0.0f;
    bool show_prediction = false;  // the plane shows the model's output y(x) instead of the partition

    void reset() {
        trainer->reset();
        curves = {};
        regions_step = -1;
    }
    void step_once() {
        const Mix2dMetrics m = trainer->step();
        curves.add(m.step, m.loss, m.load_cv, m.load);  // the whole run (TrainingCurves thins, never cuts)
    }
};

Mix2dLab& mix() {
    static Mix2dLab s;
    if (!s.trainer) s.trainer = std::make_unique<Mix2dTrainer>(Mix2dConfig{});
    return s;
}

// [SECTION] LM fine-tune state
struct LmTune {
    std::thread worker;
    std::atomic<bool> stop{false};
    std::atomic<bool> running{false};
    std::mutex mu;                // guards curves and message
    TrainingCurves curves;
    std::string message;
    std::shared_ptr<LmModel> result;  // the fine-tuned copy once a run finished (guarded by mu)
    int steps = 20;  // a few seconds: the class sees the loss fall, then routes with the copy

    ~LmTune() { halt(); }
    void halt() {
        stop = true;
        if (worker.joinable()) worker.join();
        running = false;
    }
    void start(const Session& session, std::string text) {
        halt();
        stop = false;
        running = true;
        {
            std::lock_guard<std::mutex> lock(mu);
            curves = {};
            curves.loss_name = "loss (cross-entropy, nats per byte)";
            message = "loading a copy of the model...";
            result.reset();
        }
        // The copy comes from the file the session loaded (or the same random init), so the
        // session's weights are never shared with this thread.
        const std::string path = session.model_path();
        const bool fallback = !session.model_note().empty();
        const int n_steps = steps;
        worker = std::thread([this, path, fallback, n_steps, text = std::move(text)]() mutable {
            try {
                // The lab trains the byte LM (lm_train.h): a model of another kind fails to load here
                // with the reason shown in the lab.
                LmModel model = fallback ? LmModel::init(LmConfig{}, Session::kFallbackSeed) : LmModel::load(path);
                const LmConfig& cfg = model.config();
                TrainConfig tc;
                tc.steps = n_steps;
                tc.batch = 4;
                tc.seq = std::min(64, cfg.max_seq);
                tc.lr = 1e-3f;
                tc.warmup = 5;
                tc.threads = 1;
                // A short text is repeated so every window of seq + 1 bytes exists.
                std::string data = text;
                while (data.size() < static_cast<size_t>(tc.seq) * 8) data += " " + text;
                {
                Trainer trainer(model, data, tc);  // borrows model until the end of this block
                while (!stop && trainer.step_index() < tc.steps) {
                    const TrainMetrics m = trainer.step();
                    std::lock_guard<std::mutex> lock(mu);
                    curves.add(m.step, static_cast<float>(m.loss), static_cast<float>(m.load_cv), {});
                    char buf[160];
                    std::snprintf(buf, sizeof(buf), "step %d/%d  loss %.3f nats (%.2f bpb)  load CV %.2f  %.0f bytes/s",
                                  m.step, tc.steps, m.loss, m.bpb, m.load_cv, m.tokens_per_s);
                    message = buf;
                }
                }
                std::lock_guard<std::mutex> lock(mu);
                if (stop) message += "  (stopped)";
                result = std::make_shared<LmModel>(std::move(model));
            } catch (const Error& e) {
                std::lock_guard<std::mutex> lock(mu);
                message = e.what();
            }
            running = false;
        });
    }
};

LmTune& tune() {
    static LmTune s;
    return s;
}

// The fine-tuned copy: saved where the user says (atomically, never over the shipped model or the
// file the session runs), and routed by the app in place of the model it came from.
struct SavedModel {
    std::string path;             // typed
    std::string saved;            // where the current result was written ("" = not yet)
    const LmModel* of = nullptr;  // which result `saved` holds
    std::string status;
};

SavedModel& saved_model() {
    static SavedModel s;
    return s;
}

bool same_file(const std::string& a, const std::string& b) {
    std::error_code ec1, ec2;
    const std::filesystem::path ca = std::filesystem::weakly_canonical(a, ec1);
    const std::filesystem::path cb = std::filesystem::weakly_canonical(b, ec2);
    return !ec1 && !ec2 && ca == cb;
}

// Throws moe::Error naming the path when it is not a safe place for the fine-tuned weights.
void save_finetuned(const Session& session, const LmModel& model, const std::string& path) {
    std::error_code dir_ec;
    if (std::filesystem::is_directory(path, dir_ec))
        throw Error(path, "save as", "is a folder, not a file name",
                    "name the file inside it, e.g. " + (std::filesystem::path(path) / "finetuned.safetensors").string());
    if (path.size() < 12 || path.compare(path.size() - 12, 12, ".safetensors") != 0)
        throw Error(path, "save as", "does not end in .safetensors", "e.g. ~/moelab-exports/finetuned.safetensors");
    if (same_file(path, builtin_model_path()))
        throw Error(path, "save as", "is the shipped model", "pick another file: the built-in model stays as shipped");
    if (!session.model_path().empty() && same_file(path, session.model_path()))
        throw Error(path, "save as", "is the model the app is running", "pick another file");
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    model.save(path);  // .safetensors and .json, each written to a temporary file and renamed
}

void draw_finetuned(PanelContext& ctx, const LmModel& model) {
    SavedModel& s = saved_model();
    if (s.path.empty()) s.path = export_folder() + "/finetuned.safetensors";
    ImGui::Separator();
    ImGui::TextWrapped("The fine-tuned copy is ready. Save it, then route the text with it in place of the model "
                       "it came from (the button under the lab goes back).");
    ImGui::SetNextItemWidth(std::max(120.0f, ImGui::GetContentRegionAvail().x - ImGui::CalcTextSize("save as").x - 30));
    ImGui::InputText("save as", &s.path);
    dump::item("finetune path");
    dump::fact("finetune path", s.path);  // a test types a path, then waits for it to arrive
    auto save = [&]() -> bool {
        try {
            const char* home = std::getenv("HOME");
            const std::string path =
                s.path.rfind("~/", 0) == 0 && home ? std::string(home) + s.path.substr(1) : s.path;
            save_finetuned(ctx.session, model, path);
            s.saved = path;
            s.of = &model;
            s.status = "saved " + path;
            return true;
        } catch (const Error& e) {
            s.status = e.what();
        } catch (const std::exception& e) {
            s.status = std::string("not saved: ") + e.what();
        }
        return false;
    };
    if (ImGui::Button("Save")) save();
    dump::item("finetune save");
    ImGui::SameLine();
    if (ImGui::Button("Route with it")) {
        if ((s.of == &model && !s.saved.empty()) || save()) ctx.view.open_model_path = s.saved;
    }
    dump::item("finetune use");
    teach_hover("Saves it (if not yet) and runs it in the app: the router, the loads and the next-byte guess are "
                "the fine-tuned model's.");
    if (!s.status.empty()) ImGui::TextWrapped("%s", s.status.c_str());
    if (!s.status.empty()) dump::message("fine-tune save: " + s.status);
}


// [SECTION] Drawing helpers
// The live weights as the mix2d shader's uniforms, or false when the shader cannot draw this
// router exactly (GShard's random second expert and Sinkhorn depend on the whole batch).
bool mix2d_uniforms(const Mix2dTrainer& tr, gl::Mix2dUniforms& u) {
    const Mix2dConfig& cfg = tr.config();
    const int n = cfg.n_experts, hd = cfg.hidden;
    if (n < 1 || n > gl::kMix2dMaxExperts || hd < 0 || hd > gl::kMix2dMaxHidden) return false;
    switch (cfg.scheme) {
        case Scheme::Soft: u.gate_kind = 0; break;
        case Scheme::Switch: u.gate_kind = 1; break;
        case Scheme::TopKGShard: u.gate_kind = 3; break;  // the trainer's router renormalises
        case Scheme::TopKMixtral: u.gate_kind = 2; break;
        case Scheme::SigmoidBias: u.gate_kind = 4; break;
        default: return false;
    }
    RouterConfig rc;
    rc.scheme = cfg.scheme;
    rc.n_experts = n;
    rc.k = cfg.k;
    u.n_experts = n;
    u.hidden = hd;
    u.k = std::clamp(effective_k(rc), 1, n);
    u.routed_scaling = 1.0f;
    u.router.assign(static_cast<size_t>(n) * 4, 0.0f);
    u.unit.assign(static_cast<size_t>(n) * static_cast<size_t>(hd) * 4, 0.0f);
    u.b2.assign(static_cast<size_t>(n), 0.0f);
    const bool bias = cfg.scheme == Scheme::SigmoidBias && tr.bias().size() == n;
    for (int e = 0; e < n; ++e) {
        const size_t i = static_cast<size_t>(e);
        u.router[i * 4 + 0] = tr.router_weight()(e, 0);
        u.router[i * 4 + 1] = tr.router_weight()(e, 1);
        u.router[i * 4 + 2] = tr.router_bias()[e];
        u.router[i * 4 + 3] = bias ? tr.bias()[e] : 0.0f;
        for (int j = 0; j < hd; ++j) {
            const size_t k = (i * static_cast<size_t>(hd) + static_cast<size_t>(j)) * 4;
            u.unit[k + 0] = tr.expert_w1()[i](j, 0);
            u.unit[k + 1] = tr.expert_w1()[i](j, 1);
            u.unit[k + 2] = tr.expert_b1()[i][j];
            u.unit[k + 3] = tr.expert_w2()(e, j);
        }
        u.b2[i] = tr.expert_b2()[e];
    }
    return true;
}

// The plane. With the shader: every pixel routed and predicted from the live weights
// (shaders/mix2d.frag), borders where the top expert changes, so the regions visibly move while
// it trains (Jacobs et al. 1991's picture). Otherwise (or for a batch-dependent router): one
// rect per cell of the sampled grid, the top expert's colour, brighter where its gate is larger.
// Returns whether the shader drew it (false: the grid of routed cells).
bool draw_plane(const Mix2dRegions& r, float side, bool prediction) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    gl::Mix2dUniforms u;
    if (gl::mix2d_shader_ok() && mix2d_uniforms(*mix().trainer, u)) {
        u.show = prediction ? 1 : 0;
        gl::draw_mix2d(dl, p0, ImVec2(p0.x + side, p0.y + side), u);
        dl->AddRect(p0, ImVec2(p0.x + side, p0.y + side), IM_COL32(200, 200, 200, 255));
        report_drawn("mix2d shader at %.1f %.1f side %.1f step %d show %d", p0.x, p0.y, side, mix().trainer->steps_done(),
                     u.show);
        ImGui::Dummy(ImVec2(side, side));
        return true;
    }
    report_drawn("mix2d grid at %.1f %.1f side %.1f step %d show %d", p0.x, p0.y, side, mix().trainer->steps_done(),
                 prediction ? 1 : 0);
    const float cw = side / static_cast<float>(std::max(1, r.width));
    const float ch = side / static_cast<float>(std::max(1, r.height));
    for (int y = 0; y < r.height; ++y)
        for (int x = 0; x < r.width; ++x) {
            const size_t i = static_cast<size_t>(y) * static_cast<size_t>(r.width) + static_cast<size_t>(x);
            const ImVec2 a0(p0.x + static_cast<float>(x) * cw, p0.y + static_cast<float>(y) * ch);
            ImU32 col = 0;
            if (prediction) {
                // shaders/mix2d.frag's diverging map: blue (-1), near-black (0), orange (+1).
                const float t = std::clamp(r.prediction[i], -1.5f, 1.5f) / 1.5f;
                const ImVec4 end = t < 0.0f ? ImVec4(0.34f, 0.71f, 0.91f, 1.0f) : ImVec4(0.90f, 0.62f, 0.0f, 1.0f);
                const float a = std::abs(t);
                col = ImGui::ColorConvertFloat4ToU32(ImVec4(0.06f + (end.x - 0.06f) * a, 0.06f + (end.y - 0.06f) * a,
                                                            0.06f + (end.z - 0.06f) * a, 1.0f));
            } else {
                col = expert_color(r.expert[i], 0.35f + 0.65f * std::clamp(r.gate[i], 0.0f, 1.0f));
            }
            dl->AddRectFilled(a0, ImVec2(a0.x + cw + 0.5f, a0.y + ch + 0.5f), col);
        }
    dl->AddRect(p0, ImVec2(p0.x + side, p0.y + side), IM_COL32(200, 200, 200, 255));
    ImGui::Dummy(ImVec2(side, side));
    return false;
}

// Each expert's share of the load over the recorded steps, one coloured line per expert.
void draw_load_lines(const TrainingCurves& c, ImVec2 size) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 p0 = ImGui::GetCursorScreenPos();
    dl->AddRectFilled(p0, ImVec2(p0.x + size.x, p0.y + size.y), IM_COL32(25, 25, 30, 255));
    ImGui::Dummy(size);
    const size_t n = c.expert_load.size();
    if (n < 2 || c.expert_load[0].empty()) return;
    const int n_experts = static_cast<int>(c.expert_load[0].size());
    const size_t stride = std::max<size_t>(1, n / static_cast<size_t>(std::max(2.0f, size.x)));
    for (int e = 0; e < n_experts; ++e) {
        std::vector<ImVec2> pts;
        for (size_t i = 0; i < n; i += stride) {
            const std::vector<int>& load = c.expert_load[i];
            int total = 0;
            for (int v : load) total += v;
            const float share = total > 0 ? static_cast<float>(load[static_cast<size_t>(e)]) / static_cast<float>(total) : 0.0f;
            pts.emplace_back(p0.x + size.x * static_cast<float>(i) / static_cast<float>(n - 1),
                             p0.y + size.y * (1.0f - share));
        }
        dl->AddPolyline(pts.data(), static_cast<int>(pts.size()), expert_color(e), 0, 1.5f);
    }
    // The fair share 1/N, dashed in spirit: a thin grey line.
    const float fair = p0.y + size.y * (1.0f - 1.0f / static_cast<float>(n_experts));
    dl->AddLine(ImVec2(p0.x, fair), ImVec2(p0.x + size.x, fair), IM_COL32(160, 160, 160, 160));
}

void plot_series(const char* label, const std::vector<float>& v, float height) {
    char overlay[64];
    std::snprintf(overlay, sizeof(overlay), "%s %.3f", label, v.empty() ? 0.0 : static_cast<double>(v.back()));
    ImGui::PlotLines("##series", v.data(), static_cast<int>(v.size()), 0, overlay, FLT_MAX, FLT_MAX,
                     ImVec2(ImGui::GetContentRegionAvail().x, height));
}

void draw_mix2d(Mix2dLab& s) {
    // Train within the frame budget.
    if (s.running) {
        const Clock::time_point t0 = Clock::now();
        int done = 0;
        while (done < 200 && std::chrono::duration<double, std::milli>(Clock::now() - t0).count() < kFrameBudgetMs) {
            s.step_once();
            ++done;
        }
    }
    const Mix2dTrainer& tr = *s.trainer;
    if (s.regions_step < 0 || tr.steps_done() - s.regions_step >= 10) {
        s.regions = tr.sample_regions(48, 48);
        s.regions_step = tr.steps_done();
    }

    // Buttons and toggles.
    if (ImGui::Button(s.running ? "Pause" : "Run")) s.running = !s.running;
    ImGui::SameLine();
    if (ImGui::Button("Step")) {
        s.running = false;
        s.step_once();
    }
    ImGui::SameLine();
    if (ImGui::Button("Reset")) s.reset();
    teach("Reset starts again from the same seed: the same run, step for step.");
    ImGui::SameLine();
    if (ImGui::Button("Collapse preset")) {
        s.trainer->set_balance(Mix2dBalance::None);
        s.reset();
        s.running = true;
    }
    teach("Switch top-1 with no balancing at all: a few experts win early and take every point.");
    ImGui::SameLine();
    if (ImGui::Button("Cure preset")) {
        s.trainer->set_balance(Mix2dBalance::Switch);
        s.running = true;
    }
    teach("Turns on the Switch load-balancing loss WITHOUT resetting: watch the collapse being undone.");

    const Mix2dConfig& cfg = tr.config();
    bool sw = cfg.switch_loss, z = cfg.z_loss, bias = cfg.expert_bias;
    try {
        if (ImGui::Checkbox("Switch loss", &sw)) s.trainer->set_switch_loss(sw, s.alpha);
        teach("alpha * N * sum_i f_i P_i pushes the router towards a uniform load.");
        ImGui::SameLine();
        if (ImGui::Checkbox("z-loss", &z)) s.trainer->set_z_loss(z, cfg.beta);
        teach("Penalises large router logits (ST-MoE): keeps the softmax from saturating.");
        ImGui::SameLine();
        if (ImGui::Checkbox("aux-loss-free bias", &bias)) {
            if (bias) s.trainer->set_balance(Mix2dBalance::Bias);
            else s.trainer->set_expert_bias(false, cfg.bias_rate);
        }
        teach("DeepSeek-V3: a per-expert bias added only for selection, nudged toward the mean load each step.");
        ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
        if (ImGui::SliderFloat("jitter", &s.jitter, 0.0f, 0.5f, "%.2f")) s.trainer->set_jitter(s.jitter);
        teach("Multiplies the router input by U(1-eps, 1+eps) while training (Switch Transformer).");
        ImGui::SameLine();
        ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
        if (ImGui::SliderFloat("alpha", &s.alpha, 0.001f, 1.0f, "%.3f", ImGuiSliderFlags_Logarithmic) && cfg.switch_loss)
            s.trainer->set_switch_loss(true, s.alpha);
    } catch (const Error& e) {
        s.status = e.what();
    }
    ImGui::Text("step %d   router %s   %d experts", tr.steps_done(), scheme_label(cfg.scheme), cfg.n_experts);
    // On the step line, not under the plane: the plane takes the height there is.
    ImGui::SameLine();
    ImGui::Checkbox("show the prediction", &s.show_prediction);
    teach("Off: each point coloured by the expert the router sends it to (brighter = larger gate), white where "
          "the choice changes. On: the mixture's output y(x) = sum of gate x expert, blue -1 .. orange +1, "
          "against the target's regions.");

    // The plane on the left, curves on the right.
    const float avail_w = ImGui::GetContentRegionAvail().x;
    const float side = std::clamp(avail_w * 0.35f, 80.0f, ImGui::GetContentRegionAvail().y * 0.9f);
    ImGui::BeginGroup();
    const bool per_pixel = draw_plane(s.regions, side, s.show_prediction);
    ImGui::PushTextWrapPos(ImGui::GetCursorPosX() + side);
    if (!per_pixel && (cfg.scheme == Scheme::GShardTop2 || cfg.scheme == Scheme::Sinkhorn))
        ImGui::TextDisabled("%s routes each point in view of the others (%s), so no per-pixel shader can draw it: "
                            "the plane is a 48 x 48 grid of points routed as one batch, each cell its real routing.",
                            scheme_label(cfg.scheme),
                            cfg.scheme == Scheme::GShardTop2 ? "its second expert is drawn at random, and capacity counts the batch"
                                                          : "Sinkhorn balances the load over the whole batch");
    else
        ImGui::TextDisabled(s.show_prediction ? "colour = the mixture's output" : "colour = router's top expert");
    ImGui::PopTextWrapPos();
    ImGui::EndGroup();
    ImGui::SameLine();
    ImGui::BeginGroup();
    const float h = std::max(30.0f, side / 3.0f - ImGui::GetStyle().ItemSpacing.y);
    plot_series("loss", s.curves.loss, h);
    plot_series("load CV", s.curves.load_cv, h);
    draw_load_lines(s.curves, ImVec2(ImGui::GetContentRegionAvail().x, h));
    ImGui::EndGroup();
    if (s.curves.size() > 0) {
        // Two plots, three formats each: each row says which plot it writes.
        ImGui::TextUnformatted("Export loss + CV:");
        ImGui::SameLine();
        export_buttons("mixloss", "mix2d_loss", [&] { return training_loss_plot(s.curves, "mix2d: loss and load CV"); },
                       [&] { return training_csv(s.curves); }, s.status);
        ImGui::SameLine();
        ImGui::TextUnformatted("  load share:");
        ImGui::SameLine();
        export_buttons("mixload", "mix2d_load", [&] { return training_load_plot(s.curves, "mix2d: expert load share"); },
                       [&] { return training_csv(s.curves); }, s.status);
        ImGui::TextDisabled("The whole run since Reset: %zu points from step %d (every %d%s).", s.curves.size(),
                            s.curves.step.front(), s.curves.stride, s.curves.stride == 1 ? "" : " steps");
    }
    if (!s.status.empty()) ImGui::TextWrapped("%s", s.status.c_str());
}

void draw_lm_tune(PanelContext& ctx) {
    LmTune& t = tune();
    ImGui::SetNextItemWidth(ImGui::GetFontSize() * 8);
    ImGui::SliderInt("steps", &t.steps, 1, 400, "%d", ImGuiSliderFlags_AlwaysClamp);
    dump::item("finetune steps");
    ImGui::SameLine();
    if (!t.running) {
        const bool start = ImGui::Button("Fine-tune on my text");
        dump::item("finetune start");
        if (start) {
            if (ctx.view.text_input.empty()) {
                std::lock_guard<std::mutex> lock(t.mu);
                t.message = "Type some text in the Text panel first: the fine-tune learns from it.";
            } else {
                t.start(ctx.session, ctx.view.text_input);
            }
        }
        teach("Trains a copy of the model on the text you typed (the model on screen does not change).");
    } else if (ImGui::Button("Stop")) {
        t.stop = true;
    }
    TrainingCurves curves;
    std::string message;
    {
        std::lock_guard<std::mutex> lock(t.mu);
        curves = t.curves;
        message = t.message;
    }
    if (!message.empty()) ImGui::TextWrapped("%s", message.c_str());
    dump::message("fine-tune: " + message);
    if (curves.size() > 0) {
        plot_series("loss", curves.loss, 50);
        plot_series("load CV", curves.load_cv, 40);
        static std::string status;
        ImGui::TextUnformatted("Export loss + CV:");
        ImGui::SameLine();
        export_buttons("lmloss", "lm_finetune_loss", [&] { return training_loss_plot(curves, "LM fine-tune: loss and load CV"); },
                       [&] { return training_csv(curves); }, status);
        if (!status.empty()) ImGui::TextWrapped("%s", status.c_str());
    }
    std::shared_ptr<LmModel> result;
    {
        std::lock_guard<std::mutex> lock(t.mu);
        if (!t.running) result = t.result;
    }
    if (result) draw_finetuned(ctx, *result);
}

}  // namespace

// [SECTION] Panel
// Two tabs, so each part has the whole window and neither hides below the other.
void draw_training_lab(PanelContext& ctx) {
    if (ImGui::BeginTabBar("##lab")) {
        const bool mix_open = ImGui::BeginTabItem("2D mixture of experts, training live");
        dump::item("tab lab mix2d");
        if (mix_open) {
            ctx.view.keep_rendering = ctx.view.keep_rendering || mix().running;  // it trains a few steps per frame
            try {
                draw_mix2d(mix());
            } catch (const Error& e) {
                mix().status = e.what();
                mix().running = false;
            }
            ImGui::EndTabItem();
        }
        const bool tune_open = ImGui::BeginTabItem("Fine-tune the language model (a copy)");
        dump::item("tab lab finetune");
        if (tune_open) {
            draw_lm_tune(ctx);
            ctx.view.keep_rendering = ctx.view.keep_rendering || tune().running;  // curves grow in another thread
            ImGui::EndTabItem();
        }
        ImGui::EndTabBar();
    }
    if (!ctx.session.model_path().empty() && ctx.session.model_path() != builtin_model_path()) {
        ImGui::TextWrapped("Running %s.", ctx.session.model_path().c_str());
        ImGui::SameLine();
        if (ImGui::SmallButton("back to the built-in model")) ctx.view.open_model_path = "builtin";
    }
    export_folder_field();
}

}  // namespace moe::app
