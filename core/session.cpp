// The session: the model, the text, the knobs, and a worker thread that runs them.
//
// [SECTION] Worker state
// [SECTION] One run
// [SECTION] Session
//
// Latest request wins: set_text/set_knobs only overwrite the wanted state under a mutex and
// wake the worker. The worker copies the wanted state, runs the model without the lock, then
// publishes a new immutable Snapshot. Requests that arrive during a run are merged: the worker
// next runs only the newest wanted state, so a dragged slider never queues up stale work.
#include "core/session.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <omp.h>
#include <thread>
#include <utility>

#include "core/engine/backend.h"
#include "core/error.h"
#include "core/models/lm.h"


namespace moe {

// [SECTION] Worker state
struct Session::Impl {
    std::unique_ptr<Model> model;
    std::string path;
    std::string note;

    mutable std::mutex mu;
    std::condition_variable wake;          // worker: new request or stop
    mutable std::condition_variable idle;  // wait_idle(): nothing wanted, nothing running

    // Guarded by mu.
    std::string wanted_text;
    SessionKnobs wanted_knobs;
    bool dirty = false;    // wanted state not yet run
    int bias_steps = 0;    // step_expert_bias() calls not yet applied
    bool bias_reset = false;
    bool running = false;  // worker is computing
    bool stop = false;
    std::shared_ptr<const Snapshot> latest;
    std::vector<std::vector<int>> cumulative;  // (n_moe_layers, n_experts)
    uint64_t generation = 0;

    std::thread worker;

    // Worker-only state (no lock needed: only the worker thread touches it).
    Device device = Device::Cpu;         // the backend the MoE layers run on now
    std::string device_failure;          // set once the GPU failed mid-run; CUDA is not retried
    std::vector<Vec> loaded_bias;        // (n_moe_layers) each (n_experts), as loaded
    // The trained routing's loss is the same until the tokens or the weights change: kept here.
    std::vector<TokenId> trained_tokens;
    double trained_loss = 0.0;
    bool trained_valid = false;

    explicit Impl(std::unique_ptr<Model> m) : model(std::move(m)) {}
    void loop();
    std::shared_ptr<Snapshot> run(const std::string& text, const SessionKnobs& knobs);
    std::vector<MoeLayer*> moe_layers();
    void apply_bias_requests(int steps, bool reset, const Snapshot& shown, float gamma);
    // Moves the MoE layers to `wanted`, or to the CPU when it is not available (the reason goes
    // to *why). Returns the device the layers are on now.
    Device use_device(Device wanted, std::string* why);
};

// The model's MoE layers in trace order. Only the worker mutates through these pointers.
std::vector<MoeLayer*> Session::Impl::moe_layers() { return model->moe_layers(); }

void Session::Impl::apply_bias_requests(int steps, bool reset, const Snapshot& shown, float gamma) {
    std::vector<MoeLayer*> layers = moe_layers();
    if (reset || steps > 0) trained_valid = false;
    if (reset)
        for (size_t l = 0; l < layers.size() && l < loaded_bias.size(); ++l)
            layers[l]->mutable_weights().expert_bias = loaded_bias[l];
    // The step needs routing to react to; with no text yet there is nothing to balance.
    for (int s = 0; s < steps; ++s)
        for (size_t l = 0; l < layers.size() && l < shown.forward.traces.size(); ++l)
            update_expert_bias(layers[l]->mutable_weights().expert_bias, shown.forward.traces[l], gamma);
}

Device Session::Impl::use_device(Device wanted, std::string* why) {
    Device d = usable_device(wanted, why);
    if (d == Device::Cuda && !device_failure.empty()) {
        d = Device::Cpu;
        *why = device_failure;
    }
    if (d != device) {
        try {
            model->set_backend(backend_for(d));
        } catch (const Error& e) {
            // A model that cannot use the GPU at all (a Hugging Face checkpoint's experts are held
            // packed for the CPU): say why once and stay on the CPU, instead of failing every run.
            if (d != Device::Cuda) throw;
            device_failure = std::string(e.what()) + "; running on the CPU";
            *why = device_failure;
            d = Device::Cpu;
            if (d != device) model->set_backend(backend_for(d));
        }
        device = d;
    }
    return d;
}

namespace {

std::vector<std::vector<int>> zero_load(const ModelInfo& info) {
    return std::vector<std::vector<int>>(info.moe_layer_index.size(),
                                         std::vector<int>(static_cast<size_t>(info.moe.n_experts), 0));
}

}  // namespace

// [SECTION] One run
// Runs without the lock; reads only the model (const) and its arguments.
std::shared_ptr<Snapshot> Session::Impl::run(const std::string& text, const SessionKnobs& knobs) {
    const ModelInfo& info = model->info();
    auto snap = std::make_shared<Snapshot>();
    snap->text = text;
    snap->n_bytes_total = text.size();
    snap->knobs = knobs;
    snap->knobs.router.shared_experts = knobs.shared_experts;  // what this run really used
    // Typed text may be longer than the context: the first max_seq tokens are routed.
    std::vector<TokenId> ids = model->tokenizer().encode(text, false);
    snap->n_tokens_total = ids.size();
    if (ids.size() > static_cast<size_t>(info.max_seq)) ids.resize(static_cast<size_t>(info.max_seq));
    snap->tokens = std::move(ids);
    snap->token_text.reserve(snap->tokens.size());
    for (TokenId id : snap->tokens) snap->token_text.push_back(model->tokenizer().token_bytes(id));
    const size_t n_tokens = snap->tokens.size();

    if (knobs.router.n_experts != info.moe.n_experts)
        throw Error("session", "router.n_experts", std::to_string(knobs.router.n_experts),
                    "the model has " + std::to_string(info.moe.n_experts) + " experts");
    snap->device = use_device(knobs.device, &snap->device_note);

    if (n_tokens > 0) {
        validate(knobs.router, static_cast<int>(n_tokens));
        ModelRunOptions opt;
        opt.router = knobs.router;
        // The session's toggle is the one the UI shows; it overrides whatever the router had.
        opt.router.shared_experts = knobs.shared_experts;
        const std::span<const TokenId> tokens(snap->tokens);
        const auto t0 = std::chrono::steady_clock::now();
        try {
            model->forward(tokens, opt, snap->forward);
        } catch (const std::exception& e) {
            // The knobs were validated above, so a failure on the GPU is the GPU's (driver,
            // memory): say so once, stay on the CPU for the rest of the session, and rerun.
            if (snap->device != Device::Cuda) throw;
            device_failure = std::string("the CUDA backend failed (") + e.what() + "); running on the CPU";
            snap->device = use_device(Device::Cpu, &snap->device_note);
            snap->device_note = device_failure;
            model->forward(tokens, opt, snap->forward);
        }
        snap->compute_ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        snap->loss_nats = next_token_loss(snap->forward.logits, tokens);
        if (!trained_valid || trained_tokens != snap->tokens) {
            ModelRunOptions trained;
            trained.router = info.trained_router;
            ModelForward ref;
            model->forward(tokens, trained, ref);
            trained_loss = next_token_loss(ref.logits, tokens);
            trained_tokens = snap->tokens;
            trained_valid = true;
        }
        snap->trained_loss_nats = trained_loss;
    }
    for (MoeLayer* layer : moe_layers()) snap->expert_bias.push_back(layer->weights().expert_bias);
    return snap;
}

void Session::Impl::loop() {
    // Leave one core to the UI thread: with every core in OpenMP (and Eigen's OpenMP GEMMs) the
    // frame loop competes with the barriers, and on a 2-core machine one run took 40x longer
    // (11.5 s instead of 0.29 s for 256 bytes, measured under load). This sets the thread count
    // of parallel regions started from this worker thread only.
    omp_set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) - 1));
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
        wake.wait(lock, [&] { return stop || dirty; });
        if (stop) return;
        std::string text = wanted_text;
        SessionKnobs knobs = wanted_knobs;
        const int steps = bias_steps;
        const bool reset_bias = bias_reset;
        std::shared_ptr<const Snapshot> shown = latest;
        bias_steps = 0;
        bias_reset = false;
        dirty = false;
        running = true;
        lock.unlock();

        std::shared_ptr<Snapshot> fresh;
        std::string error;
        try {
            if (steps > 0 || reset_bias) apply_bias_requests(steps, reset_bias, *shown, knobs.router.bias_update_rate);
            fresh = run(text, knobs);
        } catch (const std::exception& e) {
            // moe::Error for bad knobs or text; anything else (e.g. bad_alloc) is reported the
            // same way rather than taking the UI down.
            error = e.what();
        }

        lock.lock();
        if (fresh) {
            for (size_t l = 0; l < fresh->forward.traces.size() && l < cumulative.size(); ++l) {
                const std::vector<int>& load = fresh->forward.traces[l].expert_load;
                for (size_t e = 0; e < load.size() && e < cumulative[l].size(); ++e)
                    cumulative[l][e] += load[e];
            }
            fresh->cumulative_load = cumulative;
        } else {
            // Keep the last good result on screen, with the error beside it.
            fresh = std::make_shared<Snapshot>(*latest);
            fresh->error = error;
        }
        fresh->generation = ++generation;
        latest = std::move(fresh);
        running = false;
        if (!dirty) idle.notify_all();
    }
}

// [SECTION] Session
namespace {

}  // namespace

struct Session::Opened {
    std::unique_ptr<Model> model;
    std::string path, note;
};

Session::Opened Session::open(const std::string& model_path) {
    Opened o;
    if (!model_path.empty()) {
        o.path = model_path;
        o.model = open_model(model_path);
        return o;
    }
    o.path = builtin_model_path();
    if (std::filesystem::exists(o.path)) {
        o.model = open_model(o.path);
    } else {
        // Honest fallback while the trained weights are absent: same architecture, random weights.
        o.note = "built-in model missing: untrained random weights (" + o.path + " not found)";
        o.model = random_builtin_model(kFallbackSeed);
    }
    return o;
}

Session::Session(const std::string& model_path) : Session(open(model_path)) {}

Session::Session(Opened opened) : Session(std::move(opened.model), std::move(opened.path), std::move(opened.note)) {}

Session::Session(std::unique_ptr<Model> model, std::string path, std::string note) {
    MOE_ASSERT(model != nullptr, "a session needs a model");
    auto impl = std::make_unique<Impl>(std::move(model));
    impl->path = std::move(path);
    impl->note = std::move(note);
    impl->wanted_knobs = SessionKnobs{};
    impl->wanted_knobs.router = impl->model->info().trained_router;
    impl->cumulative = zero_load(impl->model->info());
    for (MoeLayer* layer : impl->moe_layers()) impl->loaded_bias.push_back(layer->weights().expert_bias);
    auto first = std::make_shared<Snapshot>();
    first->knobs = impl->wanted_knobs;
    first->cumulative_load = impl->cumulative;
    first->expert_bias = impl->loaded_bias;
    impl->latest = std::move(first);
    impl_ = std::move(impl);
    impl_->worker = std::thread([this] { impl_->loop(); });
}

Session::~Session() {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->stop = true;
    }
    impl_->wake.notify_all();
    impl_->worker.join();
}

const Model& Session::model() const { return *impl_->model; }
const std::string& Session::model_path() const { return impl_->path; }
const std::string& Session::model_note() const { return impl_->note; }

SessionKnobs Session::default_knobs() const {
    SessionKnobs k;
    k.router = impl_->model->info().trained_router;
    return k;
}

void Session::set_text(std::string text) {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->wanted_text = std::move(text);
        impl_->dirty = true;
    }
    impl_->wake.notify_one();
}

void Session::set_knobs(const SessionKnobs& knobs) {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->wanted_knobs = knobs;
        impl_->dirty = true;
    }
    impl_->wake.notify_one();
}

void Session::reset_cumulative() {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->cumulative = zero_load(impl_->model->info());
    // Publish at once so the load bars drop to zero even when nothing else changes.
    auto snap = std::make_shared<Snapshot>(*impl_->latest);
    snap->cumulative_load = impl_->cumulative;
    snap->generation = ++impl_->generation;
    impl_->latest = std::move(snap);
}

void Session::step_expert_bias() {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        ++impl_->bias_steps;
        impl_->dirty = true;
    }
    impl_->wake.notify_one();
}

void Session::reset_expert_bias() {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->bias_steps = 0;
        impl_->bias_reset = true;
        impl_->dirty = true;
    }
    impl_->wake.notify_one();
}

std::shared_ptr<const Snapshot> Session::latest() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->latest;
}

bool Session::busy() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->dirty || impl_->running;
}

void Session::wait_idle() const {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->idle.wait(lock, [&] { return !impl_->dirty && !impl_->running; });
}

}  // namespace moe
