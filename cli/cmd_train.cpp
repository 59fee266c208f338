// moelab-cli train: trains the tiny byte-level MoE language model (core/models/lm_train.h).
#include <omp.h>
#include <unistd.h>

#include <Eigen/Core>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "commands.h"
#include "core/models/corpus.h"
#include "core/error.h"
#include "core/io/file_io.h"
#include "core/models/lm.h"
#include "core/models/lm_train.h"

namespace moe::cli {

namespace {

const char* kUsage =
    "usage: moelab-cli train --corpus DIR|debian --out PATH [options]\n"
    "       moelab-cli train --write-corpus DIR       (writes DIR/train.txt and DIR/valid.txt)\n"
    "\n"
    "  --corpus DIR      folder with train.txt and valid.txt (scripts/make_corpus.sh), or 'debian'\n"
    "                    to build the corpus from the installed Debian files directly\n"
    "  --out PATH        where the model goes (PATH.safetensors + PATH.json)\n"
    "  --steps N         optimizer steps (3000)      --batch B   windows per step (16)\n"
    "  --seq S           bytes per window (128)      --lr X      peak learning rate (0.003)\n"
    "  --warmup N        warmup steps (100)          --seed S    data order and init (1)\n"
    "  --balance M       switch | none | bias (switch: aux loss + z-loss; bias: DeepSeek-V3)\n"
    "  --resume CKPT     continue from a checkpoint written by this command\n"
    "  --ckpt-every N    checkpoint to PATH.ckpt.safetensors every N steps (500; 0 = never)\n"
    "  --threads N       CPU threads (1); a fixed seed and thread count repeat a run bit for bit\n"
    "  --log-every N     progress lines every N steps when not a terminal (10)\n"
    "  --max-minutes M   stop early after M minutes of training and save what there is (0 = off)\n"
    "  model shape (new runs only): --layers 4 --d-model 128 --heads 4 --experts 8 --top-k 2\n"
    "                    --d-ff 128 --shared 1 --d-ff-shared 128 --moe-every 1 --max-seq 256\n";

std::string strip_ext(const std::string& p) {
    std::filesystem::path fp(p);
    if (fp.extension() == ".safetensors") fp.replace_extension();
    return fp.string();
}

void print_corpus(const Corpus& c) {
    for (const CorpusSource& s : c.sources)
        std::printf("  %-8s %7lld docs  train %9lld B  valid %8lld B  skipped files %lld\n", s.name.c_str(),
                    static_cast<long long>(s.n_docs), static_cast<long long>(s.train_bytes),
                    static_cast<long long>(s.valid_bytes), static_cast<long long>(s.skipped_files));
    std::printf("  total    train %lld B, valid %lld B\n", static_cast<long long>(c.train.size()),
                static_cast<long long>(c.valid.size()));
}

std::string fmt_time(double s) {
    char b[32];
    const int t = static_cast<int>(s + 0.5);
    std::snprintf(b, sizeof b, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    return b;
}

}  // namespace

int cmd_train(Args args) {
    ArgParser ap("train", args);
    if (ap.flag("--help") || ap.flag("-h")) {
        std::printf("%s", kUsage);
        return 0;
    }
    const std::string where = "moelab-cli train";
    const std::string write_dir = ap.value("--write-corpus", "");
    const std::string corpus_dir = ap.value("--corpus", "");
    const std::string out = ap.value("--out", "");
    const std::string resume = ap.value("--resume", "");
    const std::string balance = ap.value("--balance", "switch");
    TrainConfig tc;
    tc.steps = ap.int_value("--steps", tc.steps);
    tc.batch = ap.int_value("--batch", tc.batch);
    tc.seq = ap.int_value("--seq", tc.seq);
    tc.lr = ap.float_value("--lr", tc.lr);
    tc.warmup = ap.int_value("--warmup", tc.warmup);
    tc.seed = static_cast<uint64_t>(ap.int_value("--seed", 1));
    tc.threads = ap.int_value("--threads", 1);
    const int ckpt_every = ap.int_value("--ckpt-every", 500);
    const int log_every = ap.int_value("--log-every", 10);
    const float max_minutes = ap.float_value("--max-minutes", 0.0f);
    LmConfig mc;
    mc.n_layers = ap.int_value("--layers", 4);
    mc.d_model = ap.int_value("--d-model", 128);
    mc.n_heads = ap.int_value("--heads", 4);
    mc.max_seq = ap.int_value("--max-seq", 256);
    mc.moe_every = ap.int_value("--moe-every", 1);
    mc.moe.d_model = mc.d_model;
    mc.moe.n_experts = ap.int_value("--experts", 8);
    mc.moe.d_ff = ap.int_value("--d-ff", 128);
    mc.moe.n_shared = ap.int_value("--shared", 1);
    mc.moe.d_ff_shared = ap.int_value("--d-ff-shared", 128);
    mc.router.n_experts = mc.moe.n_experts;
    mc.router.k = ap.int_value("--top-k", 2);
    mc.router.scheme = Scheme::TopKMixtral;
    ap.finish();
    if (!ap.positional().empty())
        throw Error(where, ap.positional()[0], "is not an option of this command", "see moelab-cli train --help");

    if (!write_dir.empty()) {
        const Corpus c = build_corpus();
        std::filesystem::create_directories(write_dir);
        write_file_atomic(write_dir + "/train.txt", c.train);
        write_file_atomic(write_dir + "/valid.txt", c.valid);
        std::printf("corpus written to %s\n", write_dir.c_str());
        print_corpus(c);
        return 0;
    }
    if (corpus_dir.empty()) throw Error(where, "--corpus", "is missing", "give --corpus DIR (see scripts/make_corpus.sh) or --corpus debian");
    if (out.empty()) throw Error(where, "--out", "is missing", "give --out PATH for the trained model");
    if (!balance_from_name(balance, tc.balance))
        throw Error(where, "--balance", "'" + balance + "' is not a balancing mode", "expected switch, none or bias");
    if (log_every < 1) throw Error(where, "--log-every", "is " + std::to_string(log_every), "expected >= 1");
    if (ckpt_every < 0) throw Error(where, "--ckpt-every", "is " + std::to_string(ckpt_every), "expected >= 0");

    std::string train_text, valid_text;
    if (corpus_dir == "debian") {
        const Corpus c = build_corpus();
        print_corpus(c);
        train_text = c.train;
        valid_text = c.valid;
    } else {
        std::error_code ec;
        if (!std::filesystem::is_directory(corpus_dir, ec))
            throw Error(where, "--corpus", "'" + corpus_dir + "' is not a folder", "run scripts/make_corpus.sh, or use --corpus debian");
        train_text = read_file(corpus_dir + "/train.txt");
        valid_text = read_file(corpus_dir + "/valid.txt");
    }
    if (tc.threads < 1 || tc.threads > 256)
        throw Error(where, "--threads", "is " + std::to_string(tc.threads), "expected 1..256");
    omp_set_num_threads(tc.threads);
    Eigen::setNbThreads(tc.threads);

    LmModel model = resume.empty() ? LmModel::init(mc, tc.seed) : LmModel::load(resume);
    validate(tc, model.config(), where.c_str());
    Trainer trainer(model, train_text, tc);
    if (!resume.empty()) trainer.load_checkpoint(strip_ext(resume) + ".safetensors");
    const std::string out_path = strip_ext(out) + ".safetensors";
    const std::string ckpt_path = strip_ext(out) + ".ckpt.safetensors";
    std::printf("model: %lld parameters, %d layers, d_model %d, %d experts top-%d, %d shared; balance %s\n",
                static_cast<long long>(model.n_params()), model.config().n_layers, model.config().d_model,
                model.config().moe.n_experts, model.config().router.k, model.config().moe.n_shared,
                balance_name(tc.balance));
    std::printf("training: steps %d from %d, batch %d x seq %d, lr %g, seed %llu, threads %d\n", tc.steps,
                trainer.step_index(), tc.batch, tc.seq, tc.lr, static_cast<unsigned long long>(tc.seed), tc.threads);
    std::fflush(stdout);

    const bool tty = isatty(fileno(stdout)) != 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int first = trainer.step_index();
    double ema_loss = 0;
    while (trainer.step_index() < tc.steps) {
        const TrainMetrics m = trainer.step();
        if (!std::isfinite(m.loss)) {
            std::fprintf(stderr, "moelab-cli train: loss became %g at step %d; try a lower --lr\n", m.loss, m.step);
            return 3;
        }
        ema_loss = m.step == first + 1 ? m.loss : 0.95 * ema_loss + 0.05 * m.loss;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double eta = el / (m.step - first) * (tc.steps - m.step);
        const double tps = static_cast<double>(m.step - first) * tc.batch * tc.seq / el;
        if (tty) {
            std::printf("\rstep %6d/%d  loss %.4f  bpb %.3f  aux %.3f  cv %.2f  %.0f tok/s  ETA %s   ", m.step,
                        tc.steps, ema_loss, ema_loss / std::log(2.0), m.aux, m.load_cv, tps, fmt_time(eta).c_str());
        } else if (m.step % log_every == 0 || m.step == tc.steps) {
            std::printf("step %d/%d loss %.4f bpb %.3f aux %.3f z %.2f cv %.2f gnorm %.2f lr %.2e tok/s %.0f elapsed %s ETA %s\n",
                        m.step, tc.steps, ema_loss, ema_loss / std::log(2.0), m.aux, m.z, m.load_cv, m.grad_norm, m.lr,
                        tps, fmt_time(el).c_str(), fmt_time(eta).c_str());
        }
        std::fflush(stdout);
        if (ckpt_every > 0 && m.step % ckpt_every == 0 && m.step < tc.steps) trainer.save_checkpoint(ckpt_path);
        if (max_minutes > 0.0f && el > 60.0 * max_minutes && m.step < tc.steps) {
            std::printf("%sstopping early at step %d: --max-minutes %g reached\n", tty ? "\n" : "", m.step, max_minutes);
            break;
        }
    }
    if (tty) std::printf("\n");
    model.save(out_path);
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double vbpb = Trainer::evaluate_bpb(model, valid_text, tc.seq, 400000);
    std::printf("done: %d steps in %s, final train loss (ema) %.4f, valid bpb (first 400 kB) %.3f\nsaved %s\n",
                trainer.step_index() - first, fmt_time(el).c_str(), ema_loss, vbpb, out_path.c_str());
    return 0;
}

}  // namespace moe::cli
