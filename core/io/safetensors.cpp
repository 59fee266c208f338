// safetensors reader and writer: validation rules first, conversion to float32 second.
//
// [SECTION] Number formats
// [SECTION] Validation helpers
// [SECTION] Parse
// [SECTION] Write
#include "core/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/json_input.h"
#include "core/io/limits.h"

namespace moe {

static_assert(std::endian::native == std::endian::little, "safetensors is little-endian; moelab reads it by memcpy");

using nlohmann::json;

// [SECTION] Number formats
float f16_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: man * 2^-24
        const float v = std::ldexp(static_cast<float>(man), -24);
        return sign ? -v : v;
    }
    const uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112u) << 23) | (man << 13));
    return std::bit_cast<float>(bits);
}

uint16_t float_to_f16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u);  // NaN stays NaN, inf
    if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
    if (a < 0x38800000u) {                        // below 2^-14: half subnormal (or the smallest normal after rounding)
        const float m = std::nearbyint(std::fabs(f) * 16777216.0f);  // exact scaling, round to nearest even
        return sign | static_cast<uint16_t>(m);
    }
    uint32_t h = (((a >> 23) - 112u) << 10) | ((a & 0x7fffffu) >> 13);
    const uint32_t rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry rolls into the exponent, as it should
    return sign | static_cast<uint16_t>(h);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
    return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

namespace {

float f8_e4m3_to_float(uint8_t b) {  // E4M3 "fn": no infinities, S.1111.111 is NaN
    const uint32_t exp = (b >> 3) & 0xfu, man = b & 7u;
    float v;
    if (exp == 15 && man == 7) v = std::nanf("");
    else if (exp == 0) v = std::ldexp(static_cast<float>(man), -9);
    else v = std::ldexp(1.0f + static_cast<float>(man) / 8.0f, static_cast<int>(exp) - 7);
    return (b & 0x80u) ? -v : v;
}

float f8_e5m2_to_float(uint8_t b) { return f16_to_float(static_cast<uint16_t>(b) << 8); }  // the top byte of a half

struct DtypeInfo {
    const char* name;
    int size;
};
constexpr DtypeInfo kDtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8},
};

std::string known_dtypes() {
    std::string s;
    for (const DtypeInfo& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
    return s;
}

template <typename T>
T load(const char* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

float convert_one(std::string_view dtype, const char* p) {
    if (dtype == "F32") return load<float>(p);
    if (dtype == "F16") return f16_to_float(load<uint16_t>(p));
    if (dtype == "BF16") return bf16_to_float(load<uint16_t>(p));
    if (dtype == "F64") return static_cast<float>(load<double>(p));
    if (dtype == "I64") return static_cast<float>(load<int64_t>(p));
    if (dtype == "U64") return static_cast<float>(load<uint64_t>(p));
    if (dtype == "I32") return static_cast<float>(load<int32_t>(p));
    if (dtype == "U32") return static_cast<float>(load<uint32_t>(p));
    if (dtype == "I16") return static_cast<float>(load<int16_t>(p));
    if (dtype == "U16") return static_cast<float>(load<uint16_t>(p));
    if (dtype == "I8") return static_cast<float>(load<int8_t>(p));
    if (dtype == "U8") return static_cast<float>(load<uint8_t>(p));
    if (dtype == "BOOL") return load<uint8_t>(p) ? 1.0f : 0.0f;
    if (dtype == "F8_E4M3") return f8_e4m3_to_float(load<uint8_t>(p));
    if (dtype == "F8_E5M2") return f8_e5m2_to_float(load<uint8_t>(p));
    MOE_ASSERT(false, "dtype was validated before conversion");
    return 0.0f;
}

// [SECTION] Validation helpers
// Returns the offset of the first byte that breaks UTF-8, or npos. Rejects overlong forms,
// surrogates and code points above U+10FFFF, as a strict decoder must.
size_t first_invalid_utf8(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) { ++i; continue; }
        int len = 0;
        uint32_t cp = 0, min = 0;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1fu; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0fu; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07u; min = 0x10000; }
        else return i;
        if (i + static_cast<size_t>(len) > n) return i;
        for (int k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
            if ((cc & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (cc & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += static_cast<size_t>(len);
    }
    return std::string_view::npos;
}

std::string tensor_field(const std::string& name) { return "tensor '" + name + "'"; }

struct Entry {
    std::string name;
    uint64_t begin = 0, end = 0;
};

}  // namespace

int safetensors_dtype_size(std::string_view dtype) {
    for (const DtypeInfo& d : kDtypes)
        if (dtype == d.name) return d.size;
    return 0;
}

namespace {
int64_t shape_numel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}
}  // namespace

int64_t SafeTensor::numel() const { return shape_numel(shape); }
int64_t SafeTensorView::numel() const { return shape_numel(shape); }

// [SECTION] Parse
SafeTensorsIndex index_safetensors(std::string_view bytes, const std::string& where) {
    if (bytes.size() < 8)
        throw Error(where, "header size", "file is " + std::to_string(bytes.size()) + " bytes, shorter than 8 bytes",
                    "a safetensors file starts with a u64 header size");
    const uint64_t header_size = load<uint64_t>(bytes.data());
    if (header_size > kMaxHeaderBytes)
        throw Error(where, "header size", std::to_string(header_size) + " bytes is over the cap of " + std::to_string(kMaxHeaderBytes) + " bytes",
                    "the file is corrupt or not safetensors");
    if (header_size > bytes.size() - 8)
        throw Error(where, "header size", std::to_string(header_size) + " bytes runs beyond the file (" + std::to_string(bytes.size() - 8) +
                                              " bytes follow the size field)", "the file is truncated or corrupt");
    const std::string_view header = bytes.substr(8, header_size);
    const std::string_view data = bytes.substr(8 + header_size);

    if (const size_t bad = first_invalid_utf8(header); bad != std::string_view::npos)
        throw Error(where, "header", "is not valid UTF-8 at header byte " + std::to_string(bad), "the header must be UTF-8 JSON");
    if (header.empty() || header.front() != '{')
        throw Error(where, "header", "must start with '{'", "the header is one JSON object, optionally padded with trailing spaces");

    const json h = parse_json_input(header, where, "header", "the header is one JSON object");
    if (!h.is_object()) throw Error(where, "header", "is not a JSON object", "the header is one JSON object");
    // nlohmann keeps the last of duplicate keys silently.
    if (const std::string dup = first_duplicate_key(header); !dup.empty())
        throw Error(where, "header", "has the duplicate key '" + dup + "'", "every key must appear once");

    if (h.size() > kMaxTensors)
        throw Error(where, "header", "lists " + std::to_string(h.size()) + " tensors, over the cap of " + std::to_string(kMaxTensors), "the file is corrupt");

    SafeTensorsIndex out;
    std::vector<Entry> entries;
    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string& name = it.key();
        const json& v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) throw Error(where, "__metadata__", "is not an object", "it maps strings to strings");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) throw Error(where, "__metadata__", "value of '" + m.key() + "' is not a string", "metadata maps strings to strings");
                out.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string field = tensor_field(name);
        if (!v.is_object()) throw Error(where, field, "is not an object", "expected {\"dtype\", \"shape\", \"data_offsets\"}");
        if (!v.contains("dtype") || !v.at("dtype").is_string()) throw Error(where, field, "dtype is missing or not a string", "one of " + known_dtypes());
        const std::string dtype = v.at("dtype").get<std::string>();
        const int esize = safetensors_dtype_size(dtype);
        if (esize == 0) throw Error(where, field, "has unknown dtype '" + dtype + "'", "one of " + known_dtypes());

        if (!v.contains("shape") || !v.at("shape").is_array()) throw Error(where, field, "shape is missing or not an array", "expected a list of non-negative integers");
        if (v.at("shape").size() > kMaxTensorRank)
            throw Error(where, field, "shape has " + std::to_string(v.at("shape").size()) + " dimensions", "at most " + std::to_string(kMaxTensorRank));
        SafeTensorView t;
        t.dtype = dtype;
        uint64_t numel = 1;
        for (const json& d : v.at("shape")) {
            if (!d.is_number_integer() || (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0))
                throw Error(where, field, "shape entry " + json_shown(d) + " is not a non-negative integer", "shape entries are non-negative integers");
            const uint64_t dim = d.get<uint64_t>();
            if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
                throw Error(where, field, "shape product overflows 64 bits", "the shape is corrupt");
            t.shape.push_back(static_cast<int64_t>(dim));
        }
        uint64_t nbytes = 0;
        if (__builtin_mul_overflow(numel, static_cast<uint64_t>(esize), &nbytes) || numel > static_cast<uint64_t>(INT64_MAX))
            throw Error(where, field, "shape product overflows 64 bits in bytes", "the shape is corrupt");
        if (numel > kMaxTensorElements)
            throw Error(where, field, std::to_string(numel) + " elements is over the cap of " + std::to_string(kMaxTensorElements), "the shape is corrupt");

        if (!v.contains("data_offsets") || !v.at("data_offsets").is_array() || v.at("data_offsets").size() != 2)
            throw Error(where, field, "data_offsets is not [begin, end]", "expected two non-negative integers");
        const json& off = v.at("data_offsets");
        for (const json& o : off)
            if (!o.is_number_unsigned())
                throw Error(where, field, "data_offsets entry " + json_shown(o) + " is not a non-negative integer", "expected data_offsets [begin, end]");
        const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
        if (begin > end) throw Error(where, field, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] has begin > end", "expected begin <= end");
        if (end - begin != nbytes)
            throw Error(where, field, "byte size " + std::to_string(end - begin) + " != " + std::to_string(numel) + " elements x " + std::to_string(esize) + " bytes",
                        "data_offsets must span exactly the shape's bytes");
        entries.push_back({name, begin, end});
        out.tensors.emplace(name, std::move(t));
    }

    // Sorted by offset, the tensors must tile the data buffer exactly: no gap, no overlap, no tail.
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
    uint64_t pos = 0;
    std::string prev = "the start of the data buffer";
    for (const Entry& e : entries) {
        if (e.begin != pos)
            throw Error(where, tensor_field(e.name),
                        "data_offsets begin at " + std::to_string(e.begin) + " but " + prev + " ends at " + std::to_string(pos),
                        "offsets must be contiguous, non-overlapping, sorted and start at 0");
        pos = e.end;
        prev = "tensor '" + e.name + "'";
    }
    if (pos != data.size())
        throw Error(where, "data_offsets", "tensors cover " + std::to_string(pos) + " bytes but the data buffer has " + std::to_string(data.size()),
                    "offsets must cover the whole data buffer exactly (file length = 8 + header + last end)");

    for (const Entry& e : entries) out.tensors.at(e.name).bytes = data.substr(e.begin, e.end - e.begin);
    return out;
}

void convert_to_float(const SafeTensorView& t, float* out) {
    const int esize = safetensors_dtype_size(t.dtype);
    MOE_ASSERT(esize > 0, "the dtype was validated when the file was indexed");
    const uint64_t n = t.bytes.size() / static_cast<uint64_t>(esize);
    // An empty tensor has no storage: memcpy with a null pointer is undefined even for 0 bytes.
    if (n == 0) return;
    const char* p = t.bytes.data();
    if (t.dtype == "F32") {
        std::memcpy(out, p, t.bytes.size());
    } else if (t.dtype == "BF16") {
        for (uint64_t i = 0; i < n; ++i) out[i] = bf16_to_float(load<uint16_t>(p + 2 * i));
    } else {
        for (uint64_t i = 0; i < n; ++i) out[i] = convert_one(t.dtype, p + i * static_cast<uint64_t>(esize));
    }
}

SafeTensorsFile parse_safetensors(std::string_view bytes, const std::string& where) {
    SafeTensorsIndex index = index_safetensors(bytes, where);
    SafeTensorsFile out;
    out.metadata = std::move(index.metadata);
    for (auto& [name, v] : index.tensors) {
        SafeTensor t;
        t.data.resize(static_cast<size_t>(v.numel()));
        convert_to_float(v, t.data.data());
        t.dtype = std::move(v.dtype);
        t.shape = std::move(v.shape);
        out.tensors.emplace(name, std::move(t));
    }
    return out;
}

SafeTensorsFile read_safetensors(const std::string& path) {
    return parse_safetensors(read_file(path, kMaxSafetensorsFileBytes), path);
}

// [SECTION] Write
std::string serialize_safetensors(const SafeTensorsFile& file, const std::string& where) {
    json h = json::object();
    if (!file.metadata.empty()) h["__metadata__"] = file.metadata;
    uint64_t offset = 0;
    for (const auto& [name, t] : file.tensors) {
        if (name == "__metadata__") throw Error(where, tensor_field(name), "uses the reserved name __metadata__", "rename the tensor");
        if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
            throw Error(where, tensor_field(name), "dtype '" + t.dtype + "' cannot be written", "moelab writes F32, F16 and BF16");
        int64_t numel = 1;
        for (int64_t d : t.shape) {
            if (d < 0) throw Error(where, tensor_field(name), "shape has the negative entry " + std::to_string(d));
            if (__builtin_mul_overflow(numel, d, &numel)) throw Error(where, tensor_field(name), "shape product overflows");
        }
        if (static_cast<size_t>(numel) != t.data.size())
            throw Error(where, tensor_field(name), "has " + std::to_string(t.data.size()) + " values for a shape of " + std::to_string(numel) + " elements");
        const uint64_t nbytes = static_cast<uint64_t>(numel) * static_cast<uint64_t>(safetensors_dtype_size(t.dtype));
        h[name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
    }
    std::string header = h.dump(-1, ' ', false, json::error_handler_t::strict);
    header.append((8 - header.size() % 8) % 8, ' ');  // pad so the data buffer is 8-byte aligned

    std::string out;
    out.reserve(8 + header.size() + offset);
    const uint64_t hs = header.size();
    out.append(reinterpret_cast<const char*>(&hs), 8);
    out += header;
    for (const auto& [name, t] : file.tensors) {  // std::map iterates in the same order as above
        if (t.dtype == "F32") {
            out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size() * sizeof(float));
        } else {
            const bool half = t.dtype == "F16";
            for (float v : t.data) {
                const uint16_t b = half ? float_to_f16(v) : float_to_bf16(v);
                out.append(reinterpret_cast<const char*>(&b), 2);
            }
        }
    }
    return out;
}

void write_safetensors(const std::string& path, const SafeTensorsFile& file) { write_file_atomic(path, serialize_safetensors(file, path)); }

Mat tensor_to_mat(const SafeTensor& t, const std::string& where, const std::string& name) {
    if (t.shape.size() != 1 && t.shape.size() != 2)
        throw Error(where, tensor_field(name), "has rank " + std::to_string(t.shape.size()), "expected a (rows, cols) matrix or a vector");
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
    const int64_t cols = t.shape.back();
    if (rows > INT32_MAX || cols > INT32_MAX) throw Error(where, tensor_field(name), "is too large for a matrix");
    Mat m(rows, cols);  // (rows, cols)
    if (rows * cols > 0) std::memcpy(m.data(), t.data.data(), t.data.size() * sizeof(float));
    return m;
}

SafeTensor mat_to_tensor(ConstMatRef m, std::string dtype) {
    SafeTensor t;
    t.dtype = std::move(dtype);
    t.shape = {static_cast<int64_t>(m.rows()), static_cast<int64_t>(m.cols())};
    t.data.resize(static_cast<size_t>(m.size()));
    for (Eigen::Index r = 0; r < m.rows(); ++r)
        for (Eigen::Index c = 0; c < m.cols(); ++c) t.data[static_cast<size_t>(r * m.cols() + c)] = m(r, c);
    return t;
}

}  // namespace moe
