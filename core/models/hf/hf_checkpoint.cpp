// A Hugging Face model folder's tensors (single file or shards), and the tensor-name table.
//
// [SECTION] Tensor-name table
// [SECTION] Files of a folder
// [SECTION] Checkpoint
#include "core/models/hf/hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/io/file_io.h"

namespace moe::hf {

namespace fs = std::filesystem;
using nlohmann::json;

// [SECTION] Tensor-name table
// The names the Hub checkpoints use (transformers converts some of them to fused parameters at
// load time; the files keep one tensor per expert).
const ArchTensorNames& tensor_names(Arch arch) {
    static const ArchTensorNames kTable[] = {
        {Arch::Mixtral, "block_sparse_moe.gate.weight", "", "block_sparse_moe.experts.{j}.w1.weight",
         "block_sparse_moe.experts.{j}.w3.weight", "block_sparse_moe.experts.{j}.w2.weight", "", "", "", "", "", "", "", "", ""},
        {Arch::Qwen2Moe, "mlp.gate.weight", "", "mlp.experts.{j}.gate_proj.weight", "mlp.experts.{j}.up_proj.weight",
         "mlp.experts.{j}.down_proj.weight", "", "", "mlp.shared_expert.gate_proj.weight", "mlp.shared_expert.up_proj.weight",
         "mlp.shared_expert.down_proj.weight", "mlp.shared_expert_gate.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
         "mlp.down_proj.weight"},
        {Arch::Qwen3Moe, "mlp.gate.weight", "", "mlp.experts.{j}.gate_proj.weight", "mlp.experts.{j}.up_proj.weight",
         "mlp.experts.{j}.down_proj.weight", "", "", "", "", "", "", "mlp.gate_proj.weight", "mlp.up_proj.weight",
         "mlp.down_proj.weight"},
        {Arch::Olmoe, "mlp.gate.weight", "", "mlp.experts.{j}.gate_proj.weight", "mlp.experts.{j}.up_proj.weight",
         "mlp.experts.{j}.down_proj.weight", "", "", "", "", "", "", "", "", ""},
        {Arch::GraniteMoe, "block_sparse_moe.router.layer.weight", "", "", "", "", "block_sparse_moe.input_linear.weight",
         "block_sparse_moe.output_linear.weight", "", "", "", "", "", "", ""},
        {Arch::DeepseekV2, "mlp.gate.weight", "", "mlp.experts.{j}.gate_proj.weight", "mlp.experts.{j}.up_proj.weight",
         "mlp.experts.{j}.down_proj.weight", "", "", "mlp.shared_experts.gate_proj.weight", "mlp.shared_experts.up_proj.weight",
         "mlp.shared_experts.down_proj.weight", "", "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"},
        {Arch::DeepseekV3, "mlp.gate.weight", "mlp.gate.e_score_correction_bias", "mlp.experts.{j}.gate_proj.weight",
         "mlp.experts.{j}.up_proj.weight", "mlp.experts.{j}.down_proj.weight", "", "", "mlp.shared_experts.gate_proj.weight",
         "mlp.shared_experts.up_proj.weight", "mlp.shared_experts.down_proj.weight", "", "mlp.gate_proj.weight",
         "mlp.up_proj.weight", "mlp.down_proj.weight"},
    };
    for (const ArchTensorNames& t : kTable)
        if (t.arch == arch) return t;
    MOE_ASSERT(false, "every Arch has a row in the tensor-name table");
    return kTable[0];
}

std::string layer_tensor(int layer, const char* pattern, int expert) {
    std::string s = pattern;
    const size_t at = s.find("{j}");
    if (at != std::string::npos) s.replace(at, 3, std::to_string(expert));
    return "model.layers." + std::to_string(layer) + "." + s;
}

// [SECTION] Files of a folder
namespace {

const char* kSingle = "model.safetensors";
const char* kIndex = "model.safetensors.index.json";

// The shard files in index order, and which file each tensor is listed in (empty for one file).
std::vector<std::string> shard_files(const std::string& folder, std::map<std::string, std::string>* listed) {
    const fs::path dir(folder);
    std::error_code ec;
    if (fs::exists(dir / kSingle, ec)) return {(dir / kSingle).string()};
    const std::string index_path = (dir / kIndex).string();
    if (!fs::exists(index_path, ec))
        throw Error(folder, "", "has neither model.safetensors nor model.safetensors.index.json",
                    "a Hugging Face model folder with its safetensors weights (PyTorch .bin files are not read)");
    json j;
    try {
        j = json::parse(read_file(index_path));
    } catch (const json::exception& e) {
        throw Error(index_path, "", std::string("is not valid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error(index_path, "weight_map", "is missing or not an object", "{\"weight_map\": {tensor: file}}");
    std::vector<std::string> files;
    std::set<std::string> seen;
    for (const auto& [name, file] : j["weight_map"].items()) {
        if (!file.is_string()) throw Error(index_path, "weight_map." + name, "is not a file name");
        const std::string f = file.get<std::string>();
        if (f.empty() || f.find('/') != std::string::npos || f.find("..") != std::string::npos)
            throw Error(index_path, "weight_map." + name, "names '" + f + "'", "a shard file inside the folder");
        const std::string path = (dir / f).string();
        if (seen.insert(path).second) {
            if (!fs::exists(path, ec)) throw Error(index_path, "weight_map." + name, "names " + f + ", which is not in the folder");
            files.push_back(path);
        }
        if (listed) (*listed)[name] = path;
    }
    if (files.empty()) throw Error(index_path, "weight_map", "lists no tensors");
    return files;
}

// The JSON header of one safetensors file, read without its data.
json read_header(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot be opened");
    unsigned char size_bytes[8] = {};
    in.read(reinterpret_cast<char*>(size_bytes), 8);
    if (in.gcount() != 8) throw Error(path, "header", "is shorter than 8 bytes", "a safetensors file");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | size_bytes[i];
    if (n > kMaxHeaderBytes) throw Error(path, "header", "declares " + std::to_string(n) + " bytes", "at most 100 MB");
    std::string text(static_cast<size_t>(n), '\0');
    in.read(text.data(), static_cast<std::streamsize>(n));
    if (static_cast<uint64_t>(in.gcount()) != n) throw Error(path, "header", "is cut short");
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw Error(path, "header", std::string("is not valid JSON: ") + e.what());
    }
}

}  // namespace

CheckpointSummary summarize_checkpoint(const std::string& folder) {
    CheckpointSummary s;
    s.files = shard_files(folder, nullptr);
    for (const std::string& f : s.files) {
        std::error_code ec;
        s.file_bytes += fs::file_size(f, ec);
        const json h = read_header(f);
        for (const auto& [name, t] : h.items()) {
            if (name == "__metadata__" || !t.is_object() || !t.contains("shape") || !t["shape"].is_array()) continue;
            uint64_t numel = 1;
            for (const json& d : t["shape"]) numel *= d.is_number_unsigned() ? d.get<uint64_t>() : 0;
            s.f32_bytes += numel * 4;
            if (t.contains("dtype") && t["dtype"].is_string()) ++s.dtype_count[t["dtype"].get<std::string>()];
        }
    }
    return s;
}

// [SECTION] Checkpoint
Checkpoint Checkpoint::open(const std::string& folder, Progress progress, void* user) {
    Checkpoint c;
    c.folder_ = folder;
    std::map<std::string, std::string> listed;
    const std::vector<std::string> files = shard_files(folder, &listed);
    uint64_t total = 0, done = 0;
    for (const std::string& f : files) {
        std::error_code ec;
        total += fs::file_size(f, ec);
    }
    for (const std::string& f : files) {
        SafeTensorsFile st = read_safetensors(f);
        for (auto& [name, t] : st.tensors) {
            const auto it = listed.find(name);
            if (!listed.empty() && it != listed.end() && it->second != f)
                throw Error(f, "tensor '" + name + "'", "is in this shard but the index lists it in " + it->second);
            if (c.tensors_.count(name)) throw Error(f, "tensor '" + name + "'", "is also in " + c.tensors_[name].file, "each tensor in one shard");
            ++c.dtypes_[t.dtype];
            c.tensors_[name] = Entry{std::move(t), f};
        }
        std::error_code ec;
        done += fs::file_size(f, ec);
        if (progress && !progress(user, done, total)) throw Error(folder, "", "loading was cancelled");
    }
    for (const auto& [name, file] : listed)
        if (!c.tensors_.count(name)) throw Error(file, "tensor '" + name + "'", "is listed in the index but not in the file");
    return c;
}

const Checkpoint::Entry& Checkpoint::entry(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end())
        throw Error(folder_, "tensor '" + name + "'", "is missing", "the checkpoint does not match its config.json's model_type and sizes");
    return it->second;
}

namespace {
std::string shape_text(const std::vector<int64_t>& s) {
    std::string t = "(";
    for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
    return t + ")";
}
}  // namespace

Mat Checkpoint::take(const std::string& name, int64_t rows, int64_t cols) {
    const Entry& e = entry(name);
    const std::vector<int64_t>& s = e.tensor.shape;
    const bool ok = (s.size() == 2 && s[0] == rows && s[1] == cols) || (s.size() == 1 && rows == 1 && s[0] == cols);
    if (!ok)
        throw Error(e.file, "tensor '" + name + "'", "has shape " + shape_text(s),
                    "expected (" + std::to_string(rows) + ", " + std::to_string(cols) + ") from config.json");
    Mat m = Eigen::Map<const Mat>(e.tensor.data.data(), rows, cols);
    tensors_.erase(name);  // the float copy now lives in the model; free the file's
    return m;
}

Vec Checkpoint::take_vec(const std::string& name, int64_t n) {
    const Entry& e = entry(name);
    if (e.tensor.shape.size() != 1 || e.tensor.shape[0] != n)
        throw Error(e.file, "tensor '" + name + "'", "has shape " + shape_text(e.tensor.shape),
                    "expected (" + std::to_string(n) + ") from config.json");
    Vec v = Eigen::Map<const Vec>(e.tensor.data.data(), n);
    tensors_.erase(name);
    return v;
}

std::vector<Mat> Checkpoint::take_stack(const std::string& name, int64_t n, int64_t rows, int64_t cols) {
    const Entry& e = entry(name);
    const std::vector<int64_t>& s = e.tensor.shape;
    if (s.size() != 3 || s[0] != n || s[1] != rows || s[2] != cols)
        throw Error(e.file, "tensor '" + name + "'", "has shape " + shape_text(s),
                    "expected (" + std::to_string(n) + ", " + std::to_string(rows) + ", " + std::to_string(cols) + ") from config.json");
    std::vector<Mat> out;
    out.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        out.emplace_back(Eigen::Map<const Mat>(e.tensor.data.data() + i * rows * cols, rows, cols));
    tensors_.erase(name);
    return out;
}

std::vector<std::string> Checkpoint::untaken() const {
    std::vector<std::string> names;
    for (const auto& [name, e] : tensors_)
        if (name.find("rotary_emb.inv_freq") == std::string::npos) names.push_back(name);
    return names;
}

std::string Checkpoint::dtype() const {
    if (dtypes_.size() == 1) return dtypes_.begin()->first;
    return dtypes_.empty() ? "none" : "mixed";
}

}  // namespace moe::hf
