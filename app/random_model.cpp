// --random-model (app/random_model.h).
#include "app/random_model.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "core/error.h"

namespace moe::app {

namespace {

constexpr const char* kWhere = "moelab --random-model";

int parse_value(const std::string& key, const std::string& v, int lo, int hi) {
    try {
        size_t used = 0;
        const long x = std::stol(v, &used);
        if (used == v.size() && x >= lo && x <= hi) return static_cast<int>(x);
    } catch (const std::exception&) {
    }
    throw Error(kWhere, key, "'" + v + "'", "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
}

}  // namespace

RandomModelSpec parse_random_model(const std::string& spec) {
    RandomModelSpec out;
    LmConfig& cfg = out.cfg;
    cfg.d_model = 32;
    cfg.n_heads = 2;
    cfg.n_layers = 4;
    cfg.max_seq = 1024;
    cfg.moe.d_ff = 16;
    cfg.moe.n_experts = 8;
    cfg.moe.n_shared = 0;
    int k = -1;
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty()) continue;
        const size_t eq = item.find('=');
        if (eq == std::string::npos)
            throw Error(kWhere, item, "is not key=value", "e.g. experts=256,layers=8");
        const std::string key = item.substr(0, eq), v = item.substr(eq + 1);
        if (key == "experts") cfg.moe.n_experts = parse_value(key, v, 1, 512);
        else if (key == "layers") cfg.n_layers = parse_value(key, v, 1, 128);
        else if (key == "k") k = parse_value(key, v, 1, 64);
        else if (key == "seq") cfg.max_seq = parse_value(key, v, 1, 4096);
        else if (key == "seed") out.seed = static_cast<uint64_t>(parse_value(key, v, 0, 1000000000));
        else if (key == "d") cfg.d_model = parse_value(key, v, 2, 512);
        else if (key == "ff") cfg.moe.d_ff = parse_value(key, v, 1, 4096);
        else if (key == "shared") cfg.moe.n_shared = parse_value(key, v, 0, 8);
        else throw Error(kWhere, key, "is not a key", "experts, layers, k, seq, seed, d, ff or shared");
    }
    if (cfg.d_model % cfg.n_heads != 0 || (cfg.d_model / cfg.n_heads) % 2 != 0)
        throw Error(kWhere, "d", std::to_string(cfg.d_model), "expected a multiple of 4 (2 heads of even size)");
    if (k < 0) k = cfg.moe.n_experts >= 64 ? 8 : std::min(2, cfg.moe.n_experts);
    if (k > cfg.moe.n_experts)
        throw Error(kWhere, "k", std::to_string(k), "at most experts = " + std::to_string(cfg.moe.n_experts));
    cfg.moe.d_model = cfg.d_model;
    cfg.router.n_experts = cfg.moe.n_experts;
    cfg.router.k = k;
    validate(cfg);
    return out;
}

std::string write_random_model(const std::string& spec) {
    const RandomModelSpec rs = parse_random_model(spec);
    const LmModel model = LmModel::init(rs.cfg, rs.seed);
    const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("moelab-random-" + std::to_string(::getpid()) + ".safetensors");
    model.save(path.string());
    return path.string();
}

void remove_random_model(const std::string& path) {
    if (path.empty()) return;
    std::error_code ec;
    std::filesystem::path p(path);
    std::filesystem::remove(p, ec);
    p.replace_extension(".json");
    std::filesystem::remove(p, ec);
}

}  // namespace moe::app
