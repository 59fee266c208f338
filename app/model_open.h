// Opening another model while the app runs: File > Open model (a folder path field and the
// recent models), a folder dropped on the window, or --model at start. The model loads on a
// thread of its own with a progress bar (bytes read of total) and a Cancel button; the session
// that runs now stays on screen until the new one is ready, and stays if loading fails (the
// error shows in the dialog).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/session.h"

namespace moe::app {

class ModelOpener {
public:
    explicit ModelOpener(std::string recent_file);  // where the recent models are kept ("" = nowhere)
    ~ModelOpener();

    void show() { visible_ = true; focus_ = true; }    // File > Open model...
    void start(const std::string& path);              // begins loading (a dropped folder, Open)
    // A lesson's model: the same loading with the progress bar, but a failure closes the dialog
    // and goes to the lesson column instead (take_lesson_failure).
    void start_for_lesson(const std::string& path);
    // Once, after a lesson's model failed to load: why ("" otherwise).
    std::string take_lesson_failure();
    bool loading() const { return loading_.load(); }

    // The dialog; call once per frame inside the ImGui frame.
    void draw();
    // A loaded model's new session, once (then nullptr until the next load finishes).
    std::unique_ptr<Session> take_ready();
    const std::vector<std::string>& recent() const { return recent_; }

private:
    static bool progress(void* self, uint64_t done, uint64_t total);
    void remember(const std::string& path);

    std::string recent_file_;
    std::vector<std::string> recent_;   // most recent first
    std::string path_field_;
    bool visible_ = false;
    bool focus_ = false;
    bool for_lesson_ = false;           // the load in progress (or just failed) is a lesson's

    std::thread worker_;
    std::atomic<bool> loading_{false};
    std::atomic<bool> cancel_{false};
    std::atomic<uint64_t> done_{0}, total_{0};
    std::mutex mu_;                     // guards ready_, error_, loading_path_
    std::unique_ptr<Session> ready_;
    std::string error_;
    std::string loading_path_;
    std::string need_;                  // "needs 1.2 GB" for the path in the field
};

}  // namespace moe::app
