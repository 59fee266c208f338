// The byte-level MoE language model: KV-cache stepping agrees with the full forward, the live
// router knobs really change the prediction, bad knobs and bad files are moe::Errors naming
// what is wrong, and save/load round-trips exactly. Tiny random models keep it fast.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "core/error.h"
#include "core/models/lm.h"
#include "core/io/safetensors.h"

using namespace moe;

namespace {

const int kOneThread = [] {
    omp_set_num_threads(1);  // tiny matrices: threads only add overhead on a busy machine
    return 1;
}();

LmConfig small_config(int moe_every = 1) {
    LmConfig c;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 2;
    c.max_seq = 32;
    c.moe_every = moe_every;
    c.d_ff_dense = 24;
    c.moe.d_model = 16;
    c.moe.d_ff = 12;
    c.moe.n_experts = 4;
    c.moe.n_shared = 1;
    c.moe.d_ff_shared = 8;
    c.router.n_experts = 4;
    c.router.k = 2;
    return c;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("moelab_test_lm_" + name)).string();
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

// An independent forward for the fast one to agree with: plain Eigen products straight from the
// unpacked weights, q, k and v apart, the full (n, n) attention matrix masked with -inf.
Mat reference_logits(const LmModel& model, const std::vector<uint8_t>& bytes, const RouterConfig& rc) {
    const LmModel::Impl& m = model.impl();
    const LmConfig& c = m.cfg;
    const int n = static_cast<int>(bytes.size()), d = c.d_model, hd = d / c.n_heads;
    std::vector<int32_t> ids(bytes.begin(), bytes.end());
    Mat x(n, d);
    for (int t = 0; t < n; ++t) x.row(t) = m.tok_emb.row(bytes[static_cast<size_t>(t)]);
    for (int l = 0; l < c.n_layers; ++l) {
        const LmBlock& b = m.blocks[static_cast<size_t>(l)];
        Mat h, y;
        lm_ops::rmsnorm(x, b.attn_norm, c.norm_eps, h);
        Mat q = h * b.wq.transpose(), k = h * b.wk.transpose(), v = h * b.wv.transpose();
        lm_ops::rope(q, c.n_heads, 0, m.rope_cos, m.rope_sin);
        lm_ops::rope(k, c.n_heads, 0, m.rope_cos, m.rope_sin);
        Mat att(n, d);
        for (int head = 0; head < c.n_heads; ++head) {
            Mat s = q.middleCols(head * hd, hd) * k.middleCols(head * hd, hd).transpose() / std::sqrt(static_cast<float>(hd));
            for (int i = 0; i < n; ++i)
                for (int j = i + 1; j < n; ++j) s(i, j) = -std::numeric_limits<float>::infinity();
            for (int i = 0; i < n; ++i) {
                s.row(i) = (s.row(i).array() - s.row(i).maxCoeff()).exp().matrix();
                s.row(i) /= s.row(i).sum();
            }
            att.middleCols(head * hd, hd) = s * v.middleCols(head * hd, hd);
        }
        x += att * b.wo.transpose();
        lm_ops::rmsnorm(x, b.ffn_norm, c.norm_eps, h);
        if (b.moe) {
            RoutingTrace tr;
            b.moe->forward(h, rc, ids, y, tr);
        } else {
            lm_ops::swiglu(h, b.w1, b.w3, b.w2, y);
        }
        x += y;
    }
    Mat h;
    lm_ops::rmsnorm(x, m.final_norm, c.norm_eps, h);
    return h * m.head_weight().transpose();
}

}  // namespace

TEST(Lm, ForwardMatchesAPlainEigenReference) {
    // Sizes that are not multiples of the packed kernel's 16 columns or 6 rows, text longer
    // than one 32-row attention block, both layer kinds, one and two threads.
    LmConfig c = small_config(2);
    c.d_model = c.moe.d_model = 24;
    c.n_heads = 3;
    c.max_seq = 80;
    for (int n_threads : {1, 2}) {
        omp_set_num_threads(n_threads);
        const LmModel m = LmModel::init(c, 11);
        const std::vector<uint8_t> text = bytes_of(std::string(
            "Mixture of experts: 8 experts, top-2. Der Router waehlt; el router elige. int main(void) { }"));
        const std::vector<uint8_t> head(text.begin(), text.begin() + 77);
        LmRunOptions opt;
        opt.router = m.config().router;
        LmForward fast;
        m.forward(head, opt, fast);
        const Mat want = reference_logits(m, head, opt.router);
        EXPECT_LT((fast.logits - want).cwiseAbs().maxCoeff(), 1e-4f) << n_threads << " thread(s)";
    }
    omp_set_num_threads(1);
}

TEST(Lm, WritingWeightsThroughTheTensorTableIsSeenByTheNextForward) {
    // The forward multiplies packed copies; lm_tensor_data() must drop them, or a trainer's
    // update (or a test's perturbation) would be silently ignored.
    LmModel m = LmModel::init(small_config(2), 12);
    const std::vector<uint8_t> text = bytes_of("packed weights");
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward before, after;
    m.forward(text, opt, before);
    const std::vector<LmTensorInfo> infos = lm_tensor_infos(m.config());
    const std::vector<float*> data = lm_tensor_data(m.impl());
    for (size_t i = 0; i < infos.size(); ++i)
        if (infos[i].name == "blocks.0.wv" || infos[i].name == "blocks.0.w2") data[i][3] += 0.5f;
    m.forward(text, opt, after);
    EXPECT_GT((after.logits - before.logits).cwiseAbs().maxCoeff(), 1e-4f);
    EXPECT_LT((after.logits - reference_logits(m, text, opt.router)).cwiseAbs().maxCoeff(), 1e-4f);
}

TEST(Lm, StepWithKvCacheMatchesFullForward) {
    for (int moe_every : {1, 2}) {
        const LmModel m = LmModel::init(small_config(moe_every), 5);
        const std::vector<uint8_t> text = bytes_of("Hallo, 12 + 30 = 42; int x;");
        LmRunOptions opt;
        opt.router = m.config().router;
        LmForward full;
        m.forward(text, opt, full);
        ASSERT_EQ(full.logits.rows(), static_cast<int>(text.size()));
        ASSERT_EQ(static_cast<int>(full.traces.size()), n_moe_layers(m.config()));
        auto st = m.new_state();
        Vec logits;
        for (size_t t = 0; t < text.size(); ++t) {
            std::vector<RoutingTrace> traces;
            m.step(*st, text[t], opt, logits, &traces);
            ASSERT_EQ(traces.size(), full.traces.size());
            const float err = (logits.transpose() - full.logits.row(static_cast<int>(t))).cwiseAbs().maxCoeff();
            EXPECT_LT(err, 1e-4f) << "position " << t << " moe_every " << moe_every;
            // The same experts were chosen for this byte in every MoE layer.
            for (size_t l = 0; l < traces.size(); ++l) {
                const auto a = traces[l].token_pairs(0);
                const auto b = full.traces[l].token_pairs(static_cast<int>(t));
                ASSERT_EQ(a.size(), b.size());
                for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].expert, b[i].expert);
            }
        }
        EXPECT_EQ(st->pos, static_cast<int>(text.size()));
    }
}

TEST(Lm, CausalPrefixDoesNotSeeTheFuture) {
    const LmModel m = LmModel::init(small_config(), 6);
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward a, b;
    m.forward(bytes_of("abcdefgh"), opt, a);
    m.forward(bytes_of("abcdXYZW"), opt, b);
    EXPECT_LT((a.logits.topRows(4) - b.logits.topRows(4)).cwiseAbs().maxCoeff(), 1e-5f);
    EXPECT_GT((a.logits.row(5) - b.logits.row(5)).cwiseAbs().maxCoeff(), 1e-4f);
}

TEST(Lm, RouterKnobsChangeThePrediction) {
    const LmModel m = LmModel::init(small_config(), 7);
    const std::vector<uint8_t> text = bytes_of("The router decides.");
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward k2, k1, soft;
    m.forward(text, opt, k2);
    opt.router.k = 1;
    m.forward(text, opt, k1);
    opt.router.scheme = Scheme::Soft;
    m.forward(text, opt, soft);
    EXPECT_GT((k2.logits - k1.logits).cwiseAbs().maxCoeff(), 1e-4f);
    EXPECT_GT((k2.logits - soft.logits).cwiseAbs().maxCoeff(), 1e-4f);
    for (const RoutingTrace& tr : k1.traces) EXPECT_EQ(tr.stats.n_pairs, static_cast<int>(text.size()));
    opt.keep_moe_inputs = true;
    m.forward(text, opt, soft);
    ASSERT_EQ(soft.moe_inputs.size(), soft.traces.size());
    EXPECT_EQ(soft.moe_inputs[0].rows(), static_cast<int>(text.size()));
}

// The shared-experts teaching toggle reaches every MoE layer, in the full forward and in the
// KV-cache step, and really changes the prediction.
TEST(Lm, SharedExpertsToggleChangesTheLogits) {
    const LmModel m = LmModel::init(small_config(), 12);
    const std::vector<uint8_t> text = bytes_of("shared or not");
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward on, off;
    m.forward(text, opt, on);
    opt.router.shared_experts = false;
    m.forward(text, opt, off);
    EXPECT_GT((on.logits - off.logits).cwiseAbs().maxCoeff(), 1e-4f);
    // The first MoE layer sees the same input, so it routes the same way.
    ASSERT_EQ(on.traces.size(), off.traces.size());
    for (size_t i = 0; i < on.traces[0].pairs.size(); ++i)
        EXPECT_EQ(on.traces[0].pairs[i].expert, off.traces[0].pairs[i].expert);
    auto st = m.new_state();
    Vec logits;
    for (size_t t = 0; t < text.size(); ++t) {
        m.step(*st, text[t], opt, logits);
        EXPECT_LT((logits.transpose() - off.logits.row(static_cast<int>(t))).cwiseAbs().maxCoeff(), 1e-4f) << t;
    }
    // A model without shared experts does not care.
    LmConfig c = small_config();
    c.moe.n_shared = 0;
    const LmModel plain = LmModel::init(c, 12);
    LmForward p_on, p_off;
    plain.forward(text, opt, p_off);
    opt.router.shared_experts = true;
    plain.forward(text, opt, p_on);
    EXPECT_EQ((p_on.logits - p_off.logits).cwiseAbs().maxCoeff(), 0.0f);
}

TEST(Lm, BadKnobsAndInputsThrow) {
    const LmModel m = LmModel::init(small_config(), 8);
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward out;
    opt.router.n_experts = 5;
    try {
        m.forward(bytes_of("abc"), opt, out);
        FAIL() << "n_experts mismatch accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), "router.n_experts");
    }
    opt.router.n_experts = 4;
    opt.router.k = 9;
    EXPECT_THROW(m.forward(bytes_of("abc"), opt, out), Error);
    opt.router.k = 2;
    EXPECT_THROW(m.forward(std::vector<uint8_t>(33, 'a'), opt, out), Error);  // > max_seq
    EXPECT_THROW(m.forward(std::vector<uint8_t>{}, opt, out), Error);
    auto st = m.new_state();
    Vec logits;
    for (int i = 0; i < 32; ++i) m.step(*st, 'a', opt, logits);
    EXPECT_THROW(m.step(*st, 'a', opt, logits), Error);  // context full
    LmConfig bad = small_config();
    bad.n_heads = 3;
    EXPECT_THROW(LmModel::init(bad, 1), Error);
    bad = small_config();
    bad.router.n_experts = 3;
    EXPECT_THROW(LmModel::init(bad, 1), Error);
}

TEST(Lm, SaveLoadRoundTripsExactly) {
    const LmModel m = LmModel::init(small_config(2), 9);
    const std::string path = temp_path("rt.safetensors");
    m.save(path);
    const LmModel back = LmModel::load(path);
    EXPECT_EQ(back.n_params(), m.n_params());
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward a, b;
    m.forward(bytes_of("round trip"), opt, a);
    back.forward(bytes_of("round trip"), opt, b);
    EXPECT_EQ((a.logits - b.logits).cwiseAbs().maxCoeff(), 0.0f);
    std::filesystem::remove(path);
    std::filesystem::remove(temp_path("rt.json"));
}

TEST(Lm, LoadErrorsNameTheFileAndField) {
    const LmModel m = LmModel::init(small_config(), 10);
    const std::string path = temp_path("bad.safetensors");
    const std::string json_path = temp_path("bad.json");
    m.save(path);
    // Missing file.
    try {
        LmModel::load(temp_path("nope.safetensors"));
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos);
    }
    // Config out of range.
    std::ifstream jf(json_path);
    const std::string good_json((std::istreambuf_iterator<char>(jf)), std::istreambuf_iterator<char>());
    std::string j = good_json;
    j.replace(j.find("\"n_heads\": 2"), 12, "\"n_heads\": 0");
    write_text(json_path, j);
    try {
        LmModel::load(path);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.field(), "n_heads");
        EXPECT_EQ(e.where(), json_path);
    }
    // Not JSON at all.
    write_text(json_path, "{ not json");
    EXPECT_THROW(LmModel::load(path), Error);
    // A config whose shapes disagree with the tensors: names the tensor.
    j = good_json;
    j.replace(j.find("\"d_ff\": 12"), 10, "\"d_ff\": 10");
    write_text(json_path, j);
    try {
        LmModel::load(path);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.where(), path);
        EXPECT_NE(e.field().find("w1"), std::string::npos) << e.what();
    }
    // A tensor missing from the weights: names the file and the tensor.
    write_text(json_path, good_json);
    const std::string missing = "blocks.1.moe.experts.2.w3";
    SafeTensorsFile st = read_safetensors(path);
    ASSERT_EQ(st.tensors.erase(missing), 1u);
    write_safetensors(path, st);
    try {
        LmModel::load(path);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.where(), path);
        EXPECT_NE(e.field().find(missing), std::string::npos) << e.what();
        EXPECT_NE(e.problem().find("missing"), std::string::npos) << e.what();
    }
    // A file that breaks the safetensors rules (a gap between tensors) is refused by the reader.
    m.save(path);
    std::string raw;
    {
        std::ifstream f(path, std::ios::binary);
        raw.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    }
    write_text(path, raw + std::string(4, '\0'));  // trailing bytes no tensor covers
    try {
        LmModel::load(path);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.where(), path);
    }
    // A truncated weights file.
    write_text(path, std::string("\x10\0\0\0\0\0\0\0{}", 10));
    EXPECT_THROW(LmModel::load(path), Error);
    std::filesystem::remove(path);
    std::filesystem::remove(json_path);
}

// Issue 15, holes 1, 2, 4, 5 and 7: every hostile value in a model's .json is a moe::Error
// naming the field, never UB in a cast, a stack overflow, or a silently different model.
TEST(Lm, HostileConfigValuesNameTheField) {
    const std::string good = lm_config_to_json(small_config());
    auto field_of = [](const std::string& text) -> std::string {
        try {
            lm_config_from_json(text, "m.json");
        } catch (const Error& e) {
            EXPECT_EQ(e.where(), "m.json");
            return e.field();
        }
        return "(accepted)";
    };
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        const size_t at = s.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        if (at != std::string::npos) s.replace(at, from.size(), to);
        return s;
    };
    EXPECT_EQ(field_of(good), "(accepted)");
    EXPECT_EQ(field_of(with("\"d_model\": 16", "\"d_model\": 1e30")), "d_model");          // hole 5: UB in get<int>
    EXPECT_EQ(field_of(with("\"d_model\": 16", "\"d_model\": 4294967312")), "d_model");    // hole 7: was 16 (2^32 + 16)
    EXPECT_EQ(field_of(with("\"n_experts\": 4", "\"n_experts\": 4294967300")), "moe.n_experts");  // was 4
    EXPECT_EQ(field_of(with("\"n_layers\": 2", "\"n_layers\": 2.9")), "n_layers");         // was 2
    EXPECT_EQ(field_of(with("\"n_layers\": 2", "\"n_layers\": true")), "n_layers");
    EXPECT_EQ(field_of(with("\"norm_eps\": ", "\"norm_eps\": 1e300, \"x\": ")), "norm_eps");  // was inf as a float
    EXPECT_EQ(field_of(with("\"capacity_factor\": ", "\"capacity_factor\": 1e30, \"x\": ")), "capacity_factor");  // hole 4
    EXPECT_EQ(field_of(with("\"d_model\": 16", "\"d_model\": 1e999")), "JSON");            // hole 1
    // Hole 2: 10,000-deep nesting in any field, or a deep "moe" block that used to be copied.
    const std::string deep = std::string(10000, '[') + std::string(10000, ']');
    EXPECT_EQ(field_of(with("\"d_model\": 16", "\"d_model\": " + deep)), "JSON");
    EXPECT_EQ(field_of(with("\"d_model\": 16", "\"d_model\": [[[1]]]")), "d_model");
    EXPECT_EQ(field_of(with("\"moe\": {", "\"moe\": {\"deep\": " + deep + ", ")), "JSON");
    EXPECT_EQ(field_of(with("\"moe\": {", "\"moe\": [1], \"x\": {")), "moe");
}

// Issue 15, hole 6: a 61-byte config with d_model 4096 and 8 layers allocated and randomly
// filled over 2 GB before the weights were opened. Now the config's total is checked against
// the file's size first, and the tensors against the table before anything is allocated.
TEST(Lm, HugeConfigWithSmallWeightsFailsBeforeAllocating) {
    const LmModel m = LmModel::init(small_config(), 3);
    const std::string path = temp_path("huge.safetensors");
    const std::string json_path = temp_path("huge.json");
    m.save(path);
    for (const std::string cfg : {std::string(R"({"format":"moelab-lm","d_model":4096,"n_layers":8})"),
                                  std::string(R"({"format":"moelab-lm","moe":{"d_ff":65536}})")}) {
        write_text(json_path, cfg);
        try {
            LmModel::load(path);
            FAIL() << cfg;
        } catch (const Error& e) {
            EXPECT_EQ(e.where(), path) << e.what();
            EXPECT_EQ(e.field(), "size") << e.what();
            EXPECT_NE(e.problem().find("too small"), std::string::npos) << e.what();
        }
    }
    // No weights file at all: the reader names the missing file.
    write_text(json_path, R"({"format":"moelab-lm","d_model":4096,"n_layers":8})");
    std::filesystem::remove(path);
    try {
        LmModel::load(path);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("huge.safetensors"), std::string::npos) << e.what();
    }
    std::filesystem::remove(json_path);
}

// Weights stored as F16 (as exported models often are) load through the shared reader; the
// logits move by no more than the half-precision rounding of the weights allows.
TEST(Lm, HalfPrecisionWeightsLoad) {
    const LmModel m = LmModel::init(small_config(), 13);
    const std::string path = temp_path("half.safetensors");
    m.save(path);
    SafeTensorsFile st = read_safetensors(path);
    EXPECT_EQ(st.metadata.at("format"), "moelab-lm");
    for (auto& kv : st.tensors) kv.second.dtype = "F16";
    write_safetensors(path, st);
    const LmModel half = LmModel::load(path);
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward a, b;
    m.forward(bytes_of("half"), opt, a);
    half.forward(bytes_of("half"), opt, b);
    const float diff = (a.logits - b.logits).cwiseAbs().maxCoeff();
    EXPECT_GT(diff, 0.0f);  // really rounded
    EXPECT_LT(diff, 1e-2f * (1.0f + a.logits.cwiseAbs().maxCoeff()));
    std::filesystem::remove(path);
    std::filesystem::remove(temp_path("half.json"));
}

TEST(Lm, TopNextBytesAreSortedProbabilities) {
    RowVec logits = RowVec::Zero(256);
    logits(65) = 3.0f;
    logits(66) = 2.0f;
    const auto top = top_next_bytes(logits, 3);
    ASSERT_EQ(top.size(), 3u);
    EXPECT_EQ(top[0].first, 65);
    EXPECT_EQ(top[1].first, 66);
    const float z = std::exp(3.0f) + std::exp(2.0f) + 254.0f;
    EXPECT_NEAR(top[0].second, std::exp(3.0f) / z, 1e-5f);
    EXPECT_GE(top[1].second, top[2].second);
}

TEST(Lm, ShippedModelLoadsAndFitsTheBudget) {
    const std::string path = builtin_model_path();
    ASSERT_TRUE(std::filesystem::exists(path)) << path;
    EXPECT_LT(std::filesystem::file_size(path), 16u * 1000 * 1000);
    const LmModel m = LmModel::load(path);
    EXPECT_GT(n_moe_layers(m.config()), 0);
    LmRunOptions opt;
    opt.router = m.config().router;
    LmForward out;
    m.forward(bytes_of("The "), opt, out);
    EXPECT_TRUE(out.logits.allFinite());
}
