// safetensors read and write (https://github.com/huggingface/safetensors format), hardened:
// every file is checked against the format's rules before any byte of tensor data is used.
//
// Layout: u64 little-endian header size N, N bytes of JSON header, then the data buffer.
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data buffer) plus an optional "__metadata__" object of string to string.
//
// Rules enforced (each violation throws moe::Error naming the file, the tensor and the rule):
//   file at least 8 bytes; header size at most kMaxHeaderBytes and inside the file; header is
//   valid UTF-8, starts with '{', is one JSON object (trailing spaces allowed as padding) nested
//   at most kMaxJsonDepth deep, with numbers a double can hold; no duplicate keys; at most
//   kMaxTensors tensors of rank <= kMaxTensorRank and <= kMaxTensorElements elements; known dtype; shape entries non-negative integers; shape product does not
//   overflow; data_offsets = [begin, end] with begin <= end; end - begin == product * dtype size;
//   offsets sorted, contiguous, non-overlapping, starting at 0 and covering the whole data
//   buffer exactly (file length == 8 + N + last end).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine/tensor.h"
#include "core/io/limits.h"  // kMaxHeaderBytes and the other caps

namespace moe {

struct SafeTensor {
    std::string dtype;           // as stored: "F32", "F16", "BF16", "F64", "I64", ..., "F8_E4M3"
    std::vector<int64_t> shape;  // (rank) row-major; [] is a scalar
    std::vector<float> data;     // (numel) values converted to float32
    int64_t numel() const;
};

struct SafeTensorsFile {
    std::map<std::string, SafeTensor> tensors;
    std::map<std::string, std::string> metadata;  // "__metadata__"
};

// One tensor of a file held in memory or mapped (core/io/file_io.h MappedFile), after every
// rule above was checked, its bytes not yet converted: a loader converts or packs only the
// tensors it uses, straight from the file's bytes.
struct SafeTensorView {
    std::string dtype;
    std::vector<int64_t> shape;  // (rank)
    std::string_view bytes;      // (numel * dtype size) inside the viewed file; no alignment promised
    int64_t numel() const;
};

struct SafeTensorsIndex {
    std::map<std::string, SafeTensorView> tensors;
    std::map<std::string, std::string> metadata;
};

// Bytes per element of a safetensors dtype name; 0 if unknown.
int safetensors_dtype_size(std::string_view dtype);

// Checks a whole file held in memory against every rule and lists its tensors without touching
// their data (the views point into `bytes`, which must outlive them). `where` names it in errors.
SafeTensorsIndex index_safetensors(std::string_view bytes, const std::string& where);
// The view's values as float32 into out (numel floats).
void convert_to_float(const SafeTensorView& t, float* out);

// Parses a whole file held in memory (index_safetensors, then every tensor converted).
SafeTensorsFile parse_safetensors(std::string_view bytes, const std::string& where);
SafeTensorsFile read_safetensors(const std::string& path);

// Serialises tensors in name order. Each tensor is written in its own dtype, which must be
// "F32", "F16" or "BF16" (values are rounded to nearest even). Throws moe::Error otherwise,
// or if data.size() does not match the shape.
std::string serialize_safetensors(const SafeTensorsFile& file, const std::string& where = "safetensors");
void write_safetensors(const std::string& path, const SafeTensorsFile& file);  // atomic

// A (rows, cols) tensor as a Mat; a 1-D tensor becomes one row. Throws moe::Error naming the
// file and tensor for other ranks.
Mat tensor_to_mat(const SafeTensor& t, const std::string& where, const std::string& name);
SafeTensor mat_to_tensor(ConstMatRef m, std::string dtype = "F32");  // m: (rows, cols)

// IEEE half and bfloat16 conversions (round to nearest even; NaN stays NaN).
float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

}  // namespace moe
