// moelab-cli argument vectors -> cli_main (cli/moelab_cli.cpp), the real command line in-process.
// The input is argv[1..] separated by NUL bytes ("route\0--k\0" "3\0--out\0t"), at most
// kMaxArgs arguments of kMaxArgBytes each. Seeds: the README's and the tests' command lines
// (fuzz_seeds); the dictionary fuzz/cli.dict names every subcommand and flag.
//
// Where it runs: each execution chdirs into this process's scratch folder (fuzz_util.h), which
// holds small real inputs under fx/ (a byte LM, a Hugging Face folder, a corpus, a hidden-state
// file, texts) and is emptied of everything else afterwards. What the harness refuses (returns
// without running), so that nothing is written outside that folder and no run is long by design:
//   - an absolute path, a `~` path or `..` anywhere in an argument;
//   - `train --corpus debian` and `train --write-corpus` (they read every installed fortune file);
//   - `lesson --out` (a PNG, an SVG and a CSV per step: 60 s for one lesson in this build);
//   - a size or step count over the table below; where a command's default is large (train's
//     model shape, mix2d's 600 steps, generate's 200 tokens, lessons' training) the harness puts
//     a small value right after the command name unless the input gives that option itself.
// The built-in model (4 layers x 128, 2M parameters: 0.2-2 s a run in this build) is replaced by
// the small byte LM fx/lm.safetensors (the same file format and loader): `--model builtin`
// names it, and the commands that default to the built-in model get `--model` it.
// Every value the CLI itself checks (negative, zero, not a number, out of its range) still
// reaches it. stdout and stderr go to /dev/null (once, at start), libFuzzer's own output and the
// sanitizers' reports still reach the original stderr.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cli/cli_main.h"
#include "core/io/safetensors.h"
#include "core/models/hf/hf_tiny.h"
#include "core/models/lm.h"
#include "fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxArgs = 32;
constexpr size_t kMaxArgBytes = 1024;

struct Bound {
    const char* command;
    const char* flag;
    double max;                  // a value above this is refused by the harness
    const char* small = nullptr;  // put after the command when the input does not give the flag
};

// The sizes and step counts that make a run long or large. The CLI's own ranges are wider (route
// takes 100,000 tokens x 1024 experts; training 3000 steps of a 4 x 128 model): valid, and slow.
constexpr Bound kBounds[] = {
    {"train", "--steps", 3, "2"},       {"train", "--batch", 4, "2"},       {"train", "--seq", 32, "16"},
    {"train", "--d-model", 32, "16"},   {"train", "--layers", 2, "1"},      {"train", "--heads", 4, "2"},
    {"train", "--experts", 8, "4"},     {"train", "--d-ff", 32, "16"},      {"train", "--d-ff-shared", 32, "16"},
    {"train", "--max-seq", 64, "32"},   {"train", "--threads", 2},          {"train", "--shared", 2},
    {"mix2d", "--steps", 5, "3"},       {"mix2d", "--experts", 16},         {"mix2d", "--hidden", 32},
    {"generate", "--n", 8, "4"},        {"lesson", "--max-train-steps", 3, "3"},
    {"route", "--tokens", 256},         {"route", "--d-model", 128},        {"route", "--d-ff", 256},
    {"route", "--n-experts", 64},       {"route", "--shared", 2},
    {"hf-tiny", "--experts", 16},       {"hf-tiny", "--layers", 4},         {"hf-tiny", "--shards", 4},
};

// The built-in model's stand-in, and the commands that run the built-in model unless told otherwise.
constexpr const char* kSmallModel = "fx/lm.safetensors";
constexpr const char* kBuiltinByDefault[] = {"demo", "generate", "export", "lesson"};

bool refused_path(const std::string& a) { return a.empty() ? false : a[0] == '/' || a[0] == '~' || a.find("..") != std::string::npos; }

// Commands that write files: their arguments may name a path under fx/, which is then rebuilt.
bool writes(const std::string& command) {
    return command == "route" || command == "train" || command == "lesson" || command == "export" || command == "hf-tiny";
}

std::string small_text() {
    std::string s;
    for (int i = 0; i < 40; ++i) s += "The cat sat on the mat. Der Hund, el perro, 3 + 4 = 7.\n";
    return s;
}

void write(const fs::path& p, const std::string& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// fx/: the small real files the seeds' command lines name.
void write_fixtures(const fs::path& dir) {
    fs::remove_all(dir / "fx");
    fs::create_directories(dir / "fx" / "corpus");
    moe::LmModel::init(moe::fuzz::small_lm(16, 8), 3).save((dir / "fx" / "lm.safetensors").string());
    moe::hf::TinySpec spec;
    spec.n_layers = 1;
    moe::hf::write_tiny_checkpoint((dir / "fx" / "hf").string(), spec);
    write(dir / "fx" / "corpus" / "train.txt", small_text());
    write(dir / "fx" / "corpus" / "valid.txt", small_text().substr(0, 600));
    write(dir / "fx" / "text.txt", "Hello, w\xc3\xb6rld! MoE routes tokens.\n");
    write(dir / "fx" / "lines.jsonl", "\"Hello\"\n\"w\xc3\xb6rld\"\n");
    moe::Mat hidden = moe::Mat::Random(8, 16);  // (tokens, d_model)
    moe::SafeTensorsFile f;
    f.tensors["hidden"] = moe::mat_to_tensor(hidden);
    moe::write_safetensors((dir / "fx" / "hidden.safetensors").string(), f);
}

struct Scratch {
    fs::path dir;
    std::string home;
};

const Scratch& scratch() {
    static const Scratch s = [] {
        Scratch r{moe::fuzz::scratch_dir() / "cli", {}};
        fs::create_directories(r.dir);
        write_fixtures(r.dir);
        r.home = r.dir.string();
        // HOME: where `~/` in a lesson's model_folder and the CLI's defaults would point.
        ::setenv("HOME", r.home.c_str(), 1);
        // Once: the commands print freely; a line per execution to a terminal or log is slow.
        if (!std::freopen("/dev/null", "w", stdout)) moe::fuzz::fail("cannot send stdout to /dev/null");
        // stderr is a variable in glibc: the commands' fprintf(stderr, ...) now reach /dev/null,
        // while libFuzzer keeps the FILE* it took at start and the sanitizers write to fd 2.
        static FILE* null_err = std::fopen("/dev/null", "w");
        if (!null_err) moe::fuzz::fail("cannot open /dev/null");
        stderr = null_err;
        return r;
    }();
    return s;
}

// What fx/ holds: every path with its size and modification time, to see whether a run changed it.
std::vector<std::string> fixture_state(const fs::path& dir) {
    std::vector<std::string> state;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir / "fx", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        std::error_code e2;
        const auto size = it->is_regular_file(e2) ? it->file_size(e2) : 0;
        const auto time = it->last_write_time(e2).time_since_epoch().count();
        state.push_back(it->path().string() + " " + std::to_string(size) + " " + std::to_string(time));
    }
    std::sort(state.begin(), state.end());
    return state;
}

// Everything a run left in the scratch folder goes, except fx/, rebuilt when the run changed it
// (rebuilding it after every run that might have was a quarter of this harness's time).
void clean(const fs::path& dir, const std::vector<std::string>* fixtures_before) {
    for (const fs::directory_entry& e : fs::directory_iterator(dir))
        if (e.path().filename() != "fx") fs::remove_all(e.path());
    if (fixtures_before && fixture_state(dir) != *fixtures_before) write_fixtures(dir);
}

// A value over its bound: strtod reads what strtol or strtof would (leading spaces, a sign).
bool over(const char* v, double max) {
    char* end = nullptr;
    const double x = std::strtod(v, &end);
    return end != v && (x > max || x != x);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const Scratch& s = scratch();
    std::vector<std::string> args;
    for (size_t at = 0; at <= size;) {
        const void* nul = size > at ? std::memchr(data + at, 0, size - at) : nullptr;
        const size_t end = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - data) : size;
        if (args.size() == kMaxArgs || end - at > kMaxArgBytes) return 0;
        args.emplace_back(reinterpret_cast<const char*>(data + at), end - at);
        at = end + 1;
    }
    const std::string command = args.empty() ? "" : args[0];
    bool names_fx = false;
    for (size_t i = 0; i < args.size(); ++i) {
        if (refused_path(args[i])) return 0;
        names_fx = names_fx || args[i].find("fx") != std::string::npos;
        if (command == "train" && (args[i] == "--write-corpus" || (args[i] == "--corpus" && i + 1 < args.size() && args[i + 1] == "debian")))
            return 0;
        if (command == "lesson" && args[i] == "--out") return 0;
        if (i + 1 < args.size())
            for (const Bound& b : kBounds)
                if (command == b.command && args[i] == b.flag && over(args[i + 1].c_str(), b.max)) return 0;
    }
    std::vector<std::string> argv_strings = {"moelab-cli"};
    if (!args.empty()) argv_strings.push_back(args[0]);
    for (const Bound& b : kBounds) {
        if (command != b.command || !b.small) continue;
        bool given = false;
        for (const std::string& a : args) given = given || a == b.flag;
        if (!given) argv_strings.insert(argv_strings.end(), {b.flag, b.small});
    }
    for (size_t i = 1; i < args.size(); ++i) argv_strings.push_back(args[i]);
    bool model_given = false;
    for (size_t i = 2; i < argv_strings.size(); ++i) {
        if (argv_strings[i] != "--model") continue;
        model_given = true;
        if (i + 1 < argv_strings.size() && argv_strings[i + 1] == "builtin") argv_strings[i + 1] = kSmallModel;
    }
    if (!model_given)
        for (const char* c : kBuiltinByDefault)
            if (command == c) argv_strings.insert(argv_strings.begin() + 2, {"--model", kSmallModel});
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);

    // A run's files go into the scratch folder; libFuzzer's own paths are taken relative to where
    // it started, so the harness goes back before returning (run.sh gives artifacts absolute).
    const fs::path start = fs::current_path();
    fs::current_path(s.dir);
    const bool may_touch_fixtures = names_fx && writes(command);
    const std::vector<std::string> fixtures_before = may_touch_fixtures ? fixture_state(s.dir) : std::vector<std::string>();
    const int rc = moe::cli::cli_main(static_cast<int>(argv.size() - 1), argv.data());
    std::fflush(stdout);
    clean(s.dir, may_touch_fixtures ? &fixtures_before : nullptr);
    fs::current_path(start);
    if (rc < 0 || rc > 3) moe::fuzz::fail("moelab-cli exit code outside 0..3");
    return 0;
}
