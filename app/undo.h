// Undo / redo of knob changes (Edit menu, Ctrl+Z / Ctrl+Y). The frame loop shows the history
// the current value once it has settled (no slider held), so one drag is one step, not sixty.
#pragma once

#include <vector>

namespace moe::app {

template <typename T, typename Same>
class UndoHistory {
public:
    explicit UndoHistory(Same same, size_t max_steps = 200) : same_(same), max_steps_(max_steps) {}

    // Records `now` as a step when it differs from the last recorded value.
    void observe(const T& now) {
        if (!has_) {
            current_ = now;
            has_ = true;
            return;
        }
        if (same_(now, current_)) return;
        past_.push_back(current_);
        if (past_.size() > max_steps_) past_.erase(past_.begin());
        future_.clear();
        current_ = now;
    }
    bool can_undo() const { return !past_.empty(); }
    bool can_redo() const { return !future_.empty(); }
    // Both return the value to apply, and treat it as recorded.
    const T& undo() {
        future_.push_back(current_);
        current_ = past_.back();
        past_.pop_back();
        return current_;
    }
    const T& redo() {
        past_.push_back(current_);
        current_ = future_.back();
        future_.pop_back();
        return current_;
    }

private:
    Same same_;
    size_t max_steps_;
    bool has_ = false;
    T current_{};
    std::vector<T> past_, future_;
};

}  // namespace moe::app
