// A Hugging Face model folder's tensors (single file or shards), and the tensor-name table.
//
// [SECTION] Tensor-name table
// [SECTION] Files of a folder
// [SECTION] Checkpoint
#include "core/models/hf/hf_checkpoint.h"

#include <filesystem>
#include <algorithm>
#include <cstring>
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

// What a tensor of this header entry takes once loaded: vectors in float32, matrices (and each
// matrix of a 3-D stack) as packed panels, BF16 staying BF16 (Checkpoint::take_packed).
uint64_t resident_tensor_bytes(const std::string& name, const std::string& dtype, const json& shape) {
    std::vector<uint64_t> d;
    for (const json& x : shape) d.push_back(x.is_number_unsigned() ? x.get<uint64_t>() : 0);
    if (d.size() < 2) return (d.empty() ? 1 : d[0]) * 4;
    const uint64_t n_out = d[d.size() - 2], n_in = d.back();
    if (n_out > static_cast<uint64_t>(INT32_MAX) || n_in > static_cast<uint64_t>(INT32_MAX)) return UINT64_MAX / 4;  // refused at open
    uint64_t stack = 1;
    for (size_t i = 0; i + 2 < d.size(); ++i) stack *= d[i];
    const WeightType t = dtype == "BF16" ? WeightType::BF16 : WeightType::F32;
    // granitemoe's fused input_linear (E, 2 d_ff, d) is held as two packed halves per expert.
    const int halves = name.ends_with(tensor_names(Arch::GraniteMoe).fused_input) ? 2 : 1;
    return stack * halves * PackedMatrix::packed_bytes(t, static_cast<int>(n_out / halves), static_cast<int>(n_in));
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
            const std::string dtype = t.contains("dtype") && t["dtype"].is_string() ? t["dtype"].get<std::string>() : "";
            if (!dtype.empty()) ++s.dtype_count[dtype];
            s.resident_bytes += resident_tensor_bytes(name, dtype, t["shape"]);
        }
    }
    return s;
}

// [SECTION] Checkpoint
Checkpoint Checkpoint::open(const std::string& folder, Progress progress, void* user) {
    Checkpoint c;
    c.folder_ = folder;
    c.progress_ = progress;
    c.user_ = user;
    std::map<std::string, std::string> listed;
    const std::vector<std::string> files = shard_files(folder, &listed);
    for (const std::string& f : files) {
        // Every rule of the hardened reader (header, offsets tiling the data, file length exactly
        // 8 + header + data) is checked on the mapped bytes before any tensor is used.
        c.maps_.push_back(MappedFile::open(f, kMaxSafetensorsFileBytes));
        SafeTensorsIndex st = index_safetensors(c.maps_.back().bytes(), f);
        for (auto& [name, t] : st.tensors) {
            const auto it = listed.find(name);
            if (!listed.empty() && it != listed.end() && it->second != f)
                throw Error(f, "tensor '" + name + "'", "is in this shard but the index lists it in " + it->second);
            if (c.tensors_.count(name))
                throw Error(f, "tensor '" + name + "'", "is also in " + c.file_of(c.tensors_[name]), "each tensor in one shard");
            ++c.dtypes_[t.dtype];
            c.total_ += t.bytes.size();
            c.tensors_[name] = Entry{std::move(t), c.maps_.size() - 1};
        }
    }
    for (const auto& [name, file] : listed)
        if (!c.tensors_.count(name)) throw Error(file, "tensor '" + name + "'", "is listed in the index but not in the file");
    if (c.progress_ && !c.progress_(c.user_, 0, c.total_)) throw Error(folder, "", "loading was cancelled");
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

// The entry, if its shape is `want` (or, for want = (1, n), a 1-D tensor of n).
const Checkpoint::Entry& Checkpoint::checked(const std::string& name, const std::vector<int64_t>& want) const {
    const Entry& e = entry(name);
    const std::vector<int64_t>& s = e.tensor.shape;
    const bool ok = s == want || (want.size() == 2 && want[0] == 1 && s.size() == 1 && s[0] == want[1]);
    if (!ok) throw Error(file_of(e), "tensor '" + name + "'", "has shape " + shape_text(s), "expected " + shape_text(want) + " from config.json");
    return e;
}

void Checkpoint::converted(const Entry& e, float* out) const { convert_to_float(e.tensor, out); }

void Checkpoint::done_with(const std::string& name) {
    const auto it = tensors_.find(name);
    const uint64_t n = it->second.tensor.bytes.size();
    maps_[it->second.map].release(it->second.tensor.bytes.data(), n);  // packed now: the file's pages can go
    tensors_.erase(it);
    done_ += n;
    if (progress_ && !progress_(user_, done_, total_)) throw Error(folder_, "", "loading was cancelled");
}

Mat Checkpoint::take(const std::string& name, int64_t rows, int64_t cols) {
    const Entry& e = checked(name, {rows, cols});
    Mat m(rows, cols);
    converted(e, m.data());
    done_with(name);
    return m;
}

Vec Checkpoint::take_vec(const std::string& name, int64_t n) {
    const Entry& e = checked(name, {n});
    Vec v(n);
    converted(e, v.data());
    done_with(name);
    return v;
}

std::vector<Mat> Checkpoint::take_stack(const std::string& name, int64_t n, int64_t rows, int64_t cols) {
    const Entry& e = checked(name, {n, rows, cols});
    SafeTensorView part = e.tensor;
    part.shape = {rows, cols};
    const size_t part_bytes = e.tensor.bytes.size() / static_cast<size_t>(std::max<int64_t>(n, 1));
    std::vector<Mat> out;
    out.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        part.bytes = e.tensor.bytes.substr(static_cast<size_t>(i) * part_bytes, part_bytes);
        converted(Entry{part, e.map}, out.emplace_back(rows, cols).data());
    }
    done_with(name);
    return out;
}

void Checkpoint::take_packed(const std::string& name, int64_t rows, int64_t cols, PackedMatrix& w) {
    const Entry& e = checked(name, {rows, cols});
    if (e.tensor.dtype == "BF16") {
        const char* p = e.tensor.bytes.data();
        if (reinterpret_cast<uintptr_t>(p) % alignof(uint16_t) == 0) {
            w.pack_bf16(reinterpret_cast<const uint16_t*>(p), static_cast<int>(rows), static_cast<int>(cols));
        } else {  // a header of odd length (writers pad it to 8, a hand-made file may not): copy it aligned
            std::vector<uint16_t> aligned(static_cast<size_t>(rows * cols));
            if (!aligned.empty()) std::memcpy(aligned.data(), p, aligned.size() * sizeof(uint16_t));
            w.pack_bf16(aligned.data(), static_cast<int>(rows), static_cast<int>(cols));
        }
    } else {
        Mat m(rows, cols);
        converted(e, m.data());
        w.pack(m);
    }
    done_with(name);
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
