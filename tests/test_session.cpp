// moe::Session: the engine behind the app, run off the UI thread. Uses a tiny model saved to a
// temp file so every test is fast and independent of the shipped weights.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <numeric>
#include <span>
#include <string>
#include <unistd.h>

#include "core/error.h"
#include "core/models/hf/hf_tiny.h"
#include "core/models/lm.h"
#include "core/session.h"
#include "tiny_lm.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

LmConfig tiny_config() { return test::tiny_lm_config(48, /*with_shared=*/false); }

// One saved tiny model shared by the tests of this file.
const std::string& tiny_model_path() {
    static const std::string path = test::save_tiny_lm("session", tiny_config(), 7);
    return path;
}

// The same tiny model with one shared expert per MoE layer, as the shipped model has.
const std::string& shared_model_path() {
    static const std::string path = test::save_tiny_lm("session_shared", test::tiny_lm_config(48, /*with_shared=*/true), 11);
    return path;
}

int sum(const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); }

TEST(Session, PublishesASnapshotForTheText) {
    Session s(tiny_model_path());
    ASSERT_NE(s.latest(), nullptr);
    EXPECT_TRUE(s.model_note().empty());
    EXPECT_EQ(s.default_knobs().router.n_experts, 4);
    const uint64_t g0 = s.latest()->generation;
    s.set_text("hello");
    s.wait_idle();
    EXPECT_FALSE(s.busy());
    std::shared_ptr<const Snapshot> snap = s.latest();
    EXPECT_GT(snap->generation, g0);
    EXPECT_TRUE(snap->error.empty()) << snap->error;
    EXPECT_EQ(std::string(snap->tokens.begin(), snap->tokens.end()), "hello");
    EXPECT_EQ(snap->n_bytes_total, 5u);
    EXPECT_EQ(snap->forward.logits.rows(), 5);
    EXPECT_EQ(snap->forward.logits.cols(), 256);
    ASSERT_EQ(snap->forward.traces.size(), 2u);  // both layers are MoE
    for (const RoutingTrace& t : snap->forward.traces) {
        EXPECT_EQ(t.n_tokens, 5);
        EXPECT_EQ(sum(t.expert_load), 5 * 2);  // dropless top-2: every token keeps two experts
    }
    ASSERT_EQ(snap->expert_bias.size(), 2u);
    EXPECT_EQ(snap->expert_bias[0].size(), 4);
    EXPECT_GT(snap->compute_ms, 0.0);
}

TEST(Session, LatestRequestWins) {
    Session s(tiny_model_path());
    s.set_text(std::string(48, 'a') + "tail");
    SessionKnobs k = s.default_knobs();
    const int n_requests = 40;
    for (int i = 0; i < n_requests; ++i) {
        k.router.k = 1 + i % 4;
        k.router.seed = static_cast<uint64_t>(i);
        s.set_knobs(k);
    }
    s.wait_idle();
    std::shared_ptr<const Snapshot> snap = s.latest();
    EXPECT_TRUE(snap->error.empty()) << snap->error;
    EXPECT_EQ(snap->knobs.router.seed, static_cast<uint64_t>(n_requests - 1));
    EXPECT_EQ(snap->knobs.router.k, 1 + (n_requests - 1) % 4);
    EXPECT_EQ(snap->forward.traces[0].k, 1 + (n_requests - 1) % 4);
    // Merged requests never run more often than they were asked for (usually far less often).
    EXPECT_LE(snap->generation, static_cast<uint64_t>(n_requests + 1));
}

TEST(Session, ErrorKeepsTheLastGoodResult) {
    Session s(tiny_model_path());
    s.set_text("good text");
    s.wait_idle();
    std::shared_ptr<const Snapshot> good = s.latest();
    ASSERT_TRUE(good->error.empty());

    SessionKnobs bad = s.default_knobs();
    bad.router.k = 9;  // more experts than the model has
    s.set_knobs(bad);
    s.wait_idle();
    std::shared_ptr<const Snapshot> failed = s.latest();
    EXPECT_GT(failed->generation, good->generation);
    EXPECT_FALSE(failed->error.empty());
    EXPECT_NE(failed->error.find('9'), std::string::npos) << failed->error;  // names the bad value
    EXPECT_EQ(failed->tokens, good->tokens);
    EXPECT_EQ(failed->knobs.router.k, good->knobs.router.k);
    ASSERT_EQ(failed->forward.traces.size(), good->forward.traces.size());
    EXPECT_TRUE(failed->forward.logits.isApprox(good->forward.logits));

    // A valid request clears the error.
    SessionKnobs fixed = s.default_knobs();
    fixed.router.k = 3;
    s.set_knobs(fixed);
    s.wait_idle();
    EXPECT_TRUE(s.latest()->error.empty());
    EXPECT_EQ(s.latest()->forward.traces[0].k, 3);
}

TEST(Session, LongTextIsTruncatedToMaxSeq) {
    Session s(tiny_model_path());
    std::string text;
    for (int i = 0; i < 1000; ++i) text += static_cast<char>('a' + i % 26);
    s.set_text(text);
    s.wait_idle();
    std::shared_ptr<const Snapshot> snap = s.latest();
    EXPECT_TRUE(snap->error.empty()) << snap->error;
    EXPECT_EQ(snap->n_bytes_total, 1000u);
    ASSERT_EQ(snap->tokens.size(), 48u);
    EXPECT_EQ(std::string(snap->tokens.begin(), snap->tokens.end()), text.substr(0, 48));
    EXPECT_EQ(snap->text, text);
    EXPECT_EQ(snap->forward.traces[0].n_tokens, 48);
}

TEST(Session, BinaryAndInvalidUtf8AreJustBytes) {
    Session s(tiny_model_path());
    std::string text;
    for (int b : {0, 255, 0xC3, 0x28, 0xF0, 0x80, 10, 0}) text += static_cast<char>(b);
    s.set_text(text);
    s.wait_idle();
    std::shared_ptr<const Snapshot> snap = s.latest();
    EXPECT_TRUE(snap->error.empty()) << snap->error;
    ASSERT_EQ(snap->tokens.size(), 8u);
    EXPECT_EQ(snap->tokens[0], 0);
    EXPECT_EQ(snap->tokens[1], 255);
    EXPECT_EQ(snap->tokens[2], 0xC3);
    EXPECT_EQ(snap->forward.logits.rows(), 8);
    EXPECT_TRUE(snap->forward.logits.allFinite());
}

TEST(Session, EmptyTextIsFine) {
    Session s(tiny_model_path());
    s.set_text("abc");
    s.wait_idle();
    s.set_text("");
    s.wait_idle();
    std::shared_ptr<const Snapshot> snap = s.latest();
    EXPECT_TRUE(snap->error.empty()) << snap->error;
    EXPECT_TRUE(snap->tokens.empty());
    EXPECT_EQ(snap->n_bytes_total, 0u);
    EXPECT_TRUE(snap->forward.traces.empty());
}

TEST(Session, CumulativeLoadSumsRunsUntilReset) {
    Session s(tiny_model_path());
    s.set_text("the first text");
    s.wait_idle();
    const std::vector<int> first = s.latest()->forward.traces[1].expert_load;
    SessionKnobs k = s.default_knobs();
    k.router.k = 1;
    s.set_knobs(k);
    s.wait_idle();
    std::shared_ptr<const Snapshot> snap = s.latest();
    const std::vector<int>& second = snap->forward.traces[1].expert_load;
    ASSERT_EQ(snap->cumulative_load.size(), 2u);
    ASSERT_EQ(snap->cumulative_load[1].size(), 4u);
    for (size_t e = 0; e < 4; ++e) EXPECT_EQ(snap->cumulative_load[1][e], first[e] + second[e]);
    EXPECT_EQ(sum(snap->cumulative_load[1]), 14 * 2 + 14 * 1);

    const uint64_t before = snap->generation;
    s.reset_cumulative();
    std::shared_ptr<const Snapshot> reset = s.latest();
    EXPECT_GT(reset->generation, before);
    for (const std::vector<int>& layer : reset->cumulative_load) EXPECT_EQ(sum(layer), 0);
    EXPECT_EQ(reset->tokens, snap->tokens);  // the picture stays, only the sums restart

    s.set_text("x");
    s.wait_idle();
    EXPECT_EQ(sum(s.latest()->cumulative_load[0]), 1);  // K = 1, one token
}

TEST(Session, BiasStepMovesTowardBalanceAndResets) {
    Session s(tiny_model_path());
    SessionKnobs k = s.default_knobs();
    k.router.scheme = Scheme::SigmoidBias;
    k.router.bias_update_rate = 0.1f;
    s.set_knobs(k);
    s.set_text("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");  // one byte: one overloaded expert
    s.wait_idle();
    std::shared_ptr<const Snapshot> before = s.latest();
    ASSERT_TRUE(before->error.empty()) << before->error;
    EXPECT_EQ(before->expert_bias[0].squaredNorm(), 0.0f);
    const RoutingTrace& t = before->forward.traces[0];
    s.step_expert_bias();
    s.wait_idle();
    std::shared_ptr<const Snapshot> after = s.latest();
    ASSERT_TRUE(after->error.empty()) << after->error;
    const float mean = static_cast<float>(sum(t.expert_load)) / 4.0f;
    for (int e = 0; e < 4; ++e) {
        const float load = static_cast<float>(t.expert_load[static_cast<size_t>(e)]);
        if (load > mean) {
            EXPECT_LT(after->expert_bias[0][e], 0.0f);  // overloaded: pushed down
        } else if (load < mean) {
            EXPECT_GT(after->expert_bias[0][e], 0.0f);  // idle: pulled up
        }
    }
    s.reset_expert_bias();
    s.wait_idle();
    EXPECT_EQ(s.latest()->expert_bias[0].squaredNorm(), 0.0f);
}

// The app's checkbox: SessionKnobs::shared_experts reaches the layers as router.shared_experts,
// whatever the router knob said, and the prediction really changes.
TEST(Session, SharedExpertsTogglePassesThrough) {
    Session s(shared_model_path());
    const std::string text = "shared experts";
    s.set_text(text);
    s.wait_idle();
    std::shared_ptr<const Snapshot> on = s.latest();
    ASSERT_TRUE(on->error.empty()) << on->error;
    EXPECT_TRUE(on->knobs.shared_experts);

    SessionKnobs k = s.default_knobs();
    k.shared_experts = false;
    k.router.shared_experts = true;  // the session's toggle wins
    s.set_knobs(k);
    s.wait_idle();
    std::shared_ptr<const Snapshot> off = s.latest();
    ASSERT_TRUE(off->error.empty()) << off->error;
    EXPECT_GT(off->generation, on->generation);
    EXPECT_FALSE(off->knobs.shared_experts);
    EXPECT_FALSE(off->knobs.router.shared_experts);  // the snapshot says what it ran
    EXPECT_GT((off->forward.logits - on->forward.logits).cwiseAbs().maxCoeff(), 1e-4f);

    // Exactly what the model gives with the layer knob off.
    const LmModel ref = LmModel::load(shared_model_path());
    LmRunOptions opt;
    opt.router = s.default_knobs().router;
    opt.router.shared_experts = false;
    LmForward want;
    const std::vector<uint8_t> bytes(off->tokens.begin(), off->tokens.end());
    ref.forward(bytes, opt, want);
    EXPECT_LT((off->forward.logits - want.logits).cwiseAbs().maxCoeff(), 1e-5f);  // other thread count

    // And back on: the first result again.
    k.shared_experts = true;
    k.router.shared_experts = false;
    s.set_knobs(k);
    s.wait_idle();
    EXPECT_EQ((s.latest()->forward.logits - on->forward.logits).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(Session, UnavailableDeviceFallsBackToTheCpuWithANote) {
    if (device_available(Device::Cuda)) GTEST_SKIP() << "a CUDA device is present: no fallback to test";
    Session s(tiny_model_path());
    s.set_text("abc");
    s.wait_idle();
    const std::shared_ptr<const Snapshot> cpu = s.latest();
    EXPECT_EQ(cpu->device, Device::Cpu);
    EXPECT_TRUE(cpu->device_note.empty()) << cpu->device_note;
    SessionKnobs k = s.default_knobs();
    k.device = Device::Cuda;
    s.set_knobs(k);
    s.wait_idle();
    const std::shared_ptr<const Snapshot> fell = s.latest();
    EXPECT_TRUE(fell->error.empty()) << fell->error;
    EXPECT_EQ(fell->device, Device::Cpu);
    EXPECT_NE(fell->device_note.find("CUDA"), std::string::npos) << fell->device_note;
    EXPECT_NE(fell->device_note.find("CPU"), std::string::npos) << fell->device_note;
    EXPECT_EQ(fell->tokens.size(), 3u);
    EXPECT_EQ((fell->forward.logits - cpu->forward.logits).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(Session, CudaRunsTheSameModelAsTheCpu) {
    if (!device_available(Device::Cuda))
        GTEST_SKIP() << "no CUDA device: " << device_unavailable_reason(Device::Cuda);
    Session s(tiny_model_path());
    s.set_text("The quick brown fox: 3 + 4 = 7.");
    s.wait_idle();
    const std::shared_ptr<const Snapshot> cpu = s.latest();
    SessionKnobs k = s.default_knobs();
    k.device = Device::Cuda;
    s.set_knobs(k);
    s.wait_idle();
    const std::shared_ptr<const Snapshot> gpu = s.latest();
    ASSERT_TRUE(gpu->error.empty()) << gpu->error;
    EXPECT_EQ(gpu->device, Device::Cuda) << gpu->device_note;
    EXPECT_LT((gpu->forward.logits - cpu->forward.logits).cwiseAbs().maxCoeff(), 1e-3f);
    for (size_t l = 0; l < cpu->forward.traces.size(); ++l)
        EXPECT_EQ(gpu->forward.traces[l].expert_load, cpu->forward.traces[l].expert_load) << "layer " << l;
}

// A Hugging Face checkpoint's experts live only as the CPU pack: asking for the GPU runs it on the
// CPU with the reason, every run, instead of an error.
TEST(Session, CudaWithAModelThatCannotUseItRunsOnTheCpuAndSaysWhy) {
    if (!device_available(Device::Cuda))
        GTEST_SKIP() << "no CUDA device: " << device_unavailable_reason(Device::Cuda);
    const std::string dir = (std::filesystem::temp_directory_path() / ("moelab_session_hf_" + std::to_string(::getpid()))).string();
    hf::TinySpec spec;
    spec.model_type = "olmoe";
    hf::write_tiny_checkpoint(dir, spec);
    Session s(dir);
    s.set_text("the cat sat");
    s.wait_idle();
    const std::shared_ptr<const Snapshot> cpu = s.latest();
    ASSERT_TRUE(cpu->error.empty()) << cpu->error;
    SessionKnobs k = s.default_knobs();
    k.device = Device::Cuda;
    for (int run = 0; run < 2; ++run) {
        k.router.k = run + 1;
        s.set_knobs(k);
        s.wait_idle();
        const std::shared_ptr<const Snapshot> snap = s.latest();
        EXPECT_TRUE(snap->error.empty()) << snap->error;
        EXPECT_EQ(snap->device, Device::Cpu);
        EXPECT_NE(snap->device_note.find("running on the CPU"), std::string::npos) << snap->device_note;
        EXPECT_FALSE(snap->forward.traces.empty());
    }
    std::filesystem::remove_all(dir);
}

TEST(Device, ParseNamesTheFieldOnABadValue) {
    EXPECT_EQ(parse_device("cpu", "t", "--device"), Device::Cpu);
    EXPECT_EQ(parse_device("CUDA", "t", "--device"), Device::Cuda);
    try {
        parse_device("tpu", "moelab-cli generate", "--device");
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--device"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("tpu"), std::string::npos) << e.what();
    }
    std::string why = "stale";
    EXPECT_EQ(usable_device(Device::Cpu, &why), Device::Cpu);
    EXPECT_TRUE(why.empty());
    const Device d = usable_device(Device::Cuda, &why);
    EXPECT_EQ(d == Device::Cuda, device_available(Device::Cuda));
    EXPECT_EQ(why.empty(), device_available(Device::Cuda)) << why;
}

TEST(Session, MissingModelFileThrows) {
    EXPECT_THROW(Session("/nonexistent/dir/model.safetensors"), Error);
}

TEST(Session, BuiltinModelOrAnHonestFallback) {
    Session s("");
    EXPECT_EQ(s.model_path(), builtin_model_path());
    if (!fs::exists(builtin_model_path())) {
        EXPECT_NE(s.model_note().find("untrained random weights"), std::string::npos);
    } else {
        EXPECT_TRUE(s.model_note().empty());
    }
    s.set_text("hi");
    s.wait_idle();
    EXPECT_TRUE(s.latest()->error.empty()) << s.latest()->error;
}

TEST(Session, DestroyWhileBusyDoesNotHang) {
    for (int i = 0; i < 3; ++i) {
        Session s(tiny_model_path());
        s.set_text(std::string(48, 'z'));
        SessionKnobs k = s.default_knobs();
        k.router.k = 3;
        s.set_knobs(k);
    }  // destructor joins the worker mid-run
    SUCCEED();
}

}  // namespace
}  // namespace moe
