// The model interface (core/models/model.h): the byte LM behind it gives exactly what LmModel
// gives, the session runs it and reports the loss under the knobs and under trained routing,
// and bad input is refused with the value named.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include "core/error.h"
#include "core/models/byte_lm_model.h"
#include "core/models/lm.h"
#include "core/models/model.h"
#include "core/session.h"
#include "tiny_lm.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

LmConfig tiny_config() { return test::tiny_lm_config(40, /*with_shared=*/true); }

const std::string& tiny_path() {
    static const std::string path = test::save_tiny_lm("model", tiny_config(), 5);
    return path;
}

void expect_same_traces(const std::vector<RoutingTrace>& a, const std::vector<RoutingTrace>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t l = 0; l < a.size(); ++l) {
        ASSERT_EQ(a[l].pairs.size(), b[l].pairs.size());
        for (size_t p = 0; p < a[l].pairs.size(); ++p) {
            EXPECT_EQ(a[l].pairs[p].expert, b[l].pairs[p].expert);
            EXPECT_EQ(a[l].pairs[p].gate, b[l].pairs[p].gate);
            EXPECT_EQ(a[l].pairs[p].dropped, b[l].pairs[p].dropped);
        }
        EXPECT_EQ(a[l].expert_load, b[l].expert_load);
    }
}

TEST(ByteLmModel, ForwardAndStepAreExactlyTheLmsOwn) {
    const LmModel lm = LmModel::load(tiny_path());
    const std::unique_ptr<Model> model = open_model(tiny_path());
    const std::string text = "Tokens in, logits out: \xc3\xa9!";
    const std::vector<uint8_t> bytes(text.begin(), text.end());
    const std::vector<TokenId> ids = model->tokenizer().encode(text, false);
    ASSERT_EQ(ids.size(), bytes.size());
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i], bytes[i]);

    for (const int k : {2, 1}) {
        ModelRunOptions opt;
        opt.router = model->info().trained_router;
        opt.router.k = k;
        opt.router.drop_policy = DropPolicy::Position;
        opt.router.capacity_factor = 1.0f;
        LmForward want, got;
        lm.forward(bytes, opt, want);
        model->forward(ids, opt, got);
        EXPECT_EQ((want.logits - got.logits).cwiseAbs().maxCoeff(), 0.0f) << "K = " << k;
        EXPECT_EQ(want.trace_layer, got.trace_layer);
        expect_same_traces(want.traces, got.traces);
    }

    ModelRunOptions opt;
    opt.router = model->info().trained_router;
    std::unique_ptr<LmModel::State> lst = lm.new_state();
    std::unique_ptr<ModelState> mst = model->new_state();
    Vec want, got;
    std::vector<RoutingTrace> tw, tg;
    for (size_t i = 0; i < 6; ++i) {
        lm.step(*lst, bytes[i], opt, want, &tw);
        model->step(*mst, ids[i], opt, got, &tg);
        EXPECT_EQ((want - got).cwiseAbs().maxCoeff(), 0.0f);
        expect_same_traces(tw, tg);
    }
    EXPECT_EQ(mst->pos, 6);
}

TEST(ByteLmModel, DescribesItself) {
    const std::unique_ptr<Model> model = open_model(tiny_path());
    const ModelInfo& info = model->info();
    EXPECT_EQ(info.vocab, 256);
    EXPECT_EQ(info.max_seq, 40);
    EXPECT_EQ(info.moe.n_experts, 4);
    EXPECT_EQ(info.moe.n_shared, 1);
    EXPECT_EQ(info.trained_router.k, 2);
    EXPECT_EQ(info.trained_router.n_experts, 4);
    EXPECT_EQ(info.moe_layer_index, (std::vector<int>{0, 1}));
    EXPECT_EQ(model->moe_layers().size(), 2u);
    EXPECT_EQ(model->n_params(), LmModel::load(tiny_path()).n_params());
    // The counter's description counts the same stored weights as the model holds, minus the
    // routing state (expert_bias, the noise projection) that the counter leaves out.
    const ParamReport r = count_model_params(info.counted, "f32", info.max_seq);
    EXPECT_GT(r.total_params, 0);
    EXPECT_LE(r.total_params, model->n_params());
    EXPECT_LT(r.active_params, r.total_params);
}

TEST(ByteLmModel, RefusesBadTokens) {
    const std::unique_ptr<Model> model = open_model(tiny_path());
    ModelRunOptions opt;
    opt.router = model->info().trained_router;
    ModelForward out;
    const std::vector<TokenId> too_big = {1, 256};
    try {
        model->forward(too_big, opt, out);
        FAIL() << "id 256 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("256"), std::string::npos) << e.what();
    }
    EXPECT_THROW(model->forward(std::vector<TokenId>{-1}, opt, out), Error);
    EXPECT_THROW(model->forward(std::vector<TokenId>{}, opt, out), Error);
    EXPECT_THROW(model->forward(std::vector<TokenId>(41, 7), opt, out), Error);
    std::unique_ptr<ModelState> st = model->new_state();
    Vec logits;
    EXPECT_THROW(model->step(*st, 300, opt, logits), Error);
}

TEST(NextTokenLoss, IsTheMeanCrossEntropyOfTheNextToken) {
    Mat logits(3, 4);
    logits << 0, 1, 2, 3,   //
        1, 1, 1, 1,         //
        5, 0, 0, 0;         // the last row predicts past the end: not counted
    const std::vector<TokenId> tokens = {0, 2, 1};
    auto nll = [&](int row, int target) {
        double z = 0;
        for (int v = 0; v < 4; ++v) z += std::exp(static_cast<double>(logits(row, v)));
        return std::log(z) - logits(row, target);
    };
    EXPECT_NEAR(next_token_loss(logits, tokens), (nll(0, 2) + nll(1, 1)) / 2.0, 1e-9);
    EXPECT_TRUE(std::isnan(next_token_loss(logits.topRows(1), std::vector<TokenId>{0})));
}

TEST(SessionLoss, TrainedRoutingAndKnobsSideBySide) {
    Session s(tiny_path());
    s.set_text("the cat sat on the mat, the cat sat");
    s.wait_idle();
    std::shared_ptr<const Snapshot> trained = s.latest();
    ASSERT_TRUE(trained->error.empty()) << trained->error;
    ASSERT_TRUE(std::isfinite(trained->loss_nats));
    EXPECT_EQ(trained->loss_nats, trained->trained_loss_nats);  // same knobs, same weights, same numbers
    EXPECT_EQ(trained->token_text.size(), trained->tokens.size());
    EXPECT_EQ(trained->token_text[1], "h");
    EXPECT_EQ(next_token_loss(trained->forward.logits, trained->tokens), trained->loss_nats);

    SessionKnobs k = s.default_knobs();
    k.router.k = 1;
    s.set_knobs(k);
    s.wait_idle();
    std::shared_ptr<const Snapshot> k1 = s.latest();
    ASSERT_TRUE(k1->error.empty()) << k1->error;
    EXPECT_NE(k1->loss_nats, k1->trained_loss_nats);  // K changes the prediction, so the loss
    EXPECT_EQ(k1->trained_loss_nats, trained->trained_loss_nats);
}

TEST(OpenModel, SaysWhatIsWrong) {
    EXPECT_THROW(open_model("/nonexistent/model.safetensors"), Error);
    const fs::path dir = fs::temp_directory_path() / ("moelab_test_model_empty_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    try {
        open_model(dir.string());
        FAIL() << "an empty folder opened";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}

}  // namespace
}  // namespace moe
