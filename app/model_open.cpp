// File > Open model: the dialog, the loading thread, the recent models.
#include "app/model_open.h"

#include <imgui.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app/layout_dump.h"
#include "core/error.h"
#include "core/io/file_io.h"
#include "core/models/model.h"
#include "core/models/model_open.h"

namespace moe::app {

namespace {
constexpr size_t kMaxRecent = 8;
}

ModelOpener::ModelOpener(std::string recent_file) : recent_file_(std::move(recent_file)) {
    if (recent_file_.empty()) return;
    std::ifstream in(recent_file_);
    std::string line;
    while (std::getline(in, line) && recent_.size() < kMaxRecent)
        if (!line.empty()) recent_.push_back(line);
}

ModelOpener::~ModelOpener() {
    cancel_ = true;
    if (worker_.joinable()) worker_.join();
}

void ModelOpener::remember(const std::string& path) {
    recent_.erase(std::remove(recent_.begin(), recent_.end(), path), recent_.end());
    recent_.insert(recent_.begin(), path);
    if (recent_.size() > kMaxRecent) recent_.resize(kMaxRecent);
    if (recent_file_.empty()) return;
    std::string text;
    for (const std::string& r : recent_) text += r + "\n";
    try {
        write_file_atomic(recent_file_, text);
    } catch (const Error&) {
        // The list is a convenience: a read-only config folder must not stop a model from opening.
    }
}

bool ModelOpener::progress(void* self, uint64_t done, uint64_t total) {
    auto* o = static_cast<ModelOpener*>(self);
    o->done_ = done;
    o->total_ = total;
    return !o->cancel_.load();
}

void ModelOpener::start_for_lesson(const std::string& path) {
    if (loading_.load() || path.empty()) return;
    start(path);
    for_lesson_ = true;
}

std::string ModelOpener::take_lesson_failure() {
    if (!for_lesson_ || loading_.load()) return {};
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.empty()) return {};
    for_lesson_ = false;
    visible_ = false;
    std::string e = error_;
    error_.clear();
    return e;
}

void ModelOpener::start(const std::string& path) {
    if (loading_.load() || path.empty()) return;
    for_lesson_ = false;
    if (worker_.joinable()) worker_.join();
    visible_ = true;
    path_field_ = path;
    cancel_ = false;
    done_ = 0;
    total_ = 0;
    {
        std::lock_guard<std::mutex> lock(mu_);
        error_.clear();
        loading_path_ = path;
    }
    loading_ = true;
    worker_ = std::thread([this, path] {
        std::unique_ptr<Session> s;
        std::string error;
        try {
            OpenModelOptions opt;
            opt.progress = &ModelOpener::progress;
            opt.user = this;
            s = std::make_unique<Session>(open_model(path, opt), path);
        } catch (const std::exception& e) {
            error = e.what();
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (s) ready_ = std::move(s);
        error_ = error;
        loading_ = false;
    });
}

std::unique_ptr<Session> ModelOpener::take_ready() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_) return nullptr;
    for_lesson_ = false;
    remember(loading_path_);
    visible_ = false;
    return std::move(ready_);
}

void ModelOpener::draw() {
    if (!visible_) return;
    ImGui::OpenPopup("Open model");
    ImGui::SetNextWindowSize(ImVec2(ImGui::GetFontSize() * 34, 0), ImGuiCond_Appearing);
    if (!ImGui::BeginPopupModal("Open model", nullptr, ImGuiWindowFlags_NoSavedSettings)) return;
    ImGui::TextWrapped("A Hugging Face model folder (config.json, *.safetensors, tokenizer.json): Mixtral, "
                       "Qwen-MoE, OLMoE, Granite-MoE, DeepSeek-V2/V3, Kimi-K2. Or drop the folder on the window.");
    const bool busy = loading_.load();
    ImGui::BeginDisabled(busy);
    if (focus_) {
        ImGui::SetKeyboardFocusHere();
        focus_ = false;
    }
    ImGui::SetNextItemWidth(-1);
    char buf[1024];
    std::snprintf(buf, sizeof buf, "%s", path_field_.c_str());
    const bool enter = ImGui::InputText("##model_path", buf, sizeof buf, ImGuiInputTextFlags_EnterReturnsTrue);
    dump::item("open model path");
    if (path_field_ != buf) {
        path_field_ = buf;
        need_.clear();
        std::error_code ec;
        if (std::filesystem::is_directory(path_field_, ec)) {
            try {
                char n[96];
                std::snprintf(n, sizeof n, "needs %.2f GB of memory once loaded (float32)",
                              static_cast<double>(model_memory_bytes(path_field_)) / 1e9);
                need_ = n;
            } catch (const Error& e) {
                need_ = e.what();
            }
        }
    }
    if (!need_.empty()) ImGui::TextDisabled("%s", need_.c_str());
    if (!recent_.empty()) {
        ImGui::TextUnformatted("Recent models:");
        for (const std::string& r : recent_)
            if (ImGui::Selectable(r.c_str(), r == path_field_)) {
                path_field_ = r;
                need_.clear();
            }
    }
    const bool open = ImGui::Button("Open");
    dump::item("open model open");
    if (open || enter) start(path_field_);
    ImGui::SameLine();
    if (ImGui::Button("Built-in model")) start("builtin");
    ImGui::SameLine();
    const bool close = ImGui::Button("Close");
    dump::item("open model close");
    if (close) {
        visible_ = false;
        ImGui::CloseCurrentPopup();
    }
    ImGui::EndDisabled();
    if (busy) {
        const uint64_t total = total_.load(), done = done_.load();
        char label[96];
        std::snprintf(label, sizeof label, "%.1f of %.1f MB read", static_cast<double>(done) / 1e6, static_cast<double>(total) / 1e6);
        ImGui::ProgressBar(total ? static_cast<float>(static_cast<double>(done) / static_cast<double>(total)) : 0.0f,
                           ImVec2(-1, 0), total ? label : "reading config.json and the tokenizer...");
        if (ImGui::Button("Cancel")) cancel_ = true;
        ImGui::SameLine();
        ImGui::TextDisabled("the current model keeps running until this one is ready");
    } else {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_.empty()) {
            ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.5f, 0.4f, 1.0f));
            ImGui::TextWrapped("Not opened (the current model stays): %s", error_.c_str());  // errors name long paths
            ImGui::PopStyleColor();
            dump::item("open model error");
        }
    }
    ImGui::EndPopup();
}

}  // namespace moe::app
