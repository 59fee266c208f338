// safetensors reader/writer (core/io/safetensors.h) and file_io (core/io/file_io.h).
// Every format rule gets a hand-made malformed file, built here byte by byte.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "core/error.h"
#include "core/io/file_io.h"
#include "core/io/safetensors.h"

namespace {

namespace fs = std::filesystem;

std::string u64le(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
}

// A file from a header text and a data buffer of n_data zero bytes (or the given bytes).
std::string make_file(const std::string& header, const std::string& data) { return u64le(header.size()) + header + data; }
std::string zeros(size_t n) { return std::string(n, '\0'); }

// Expects parsing to fail with a message naming the file and containing each fragment.
void expect_rule(const std::string& bytes, std::initializer_list<std::string> fragments) {
    try {
        moe::parse_safetensors(bytes, "bad.safetensors");
        ADD_FAILURE() << "parsed a malformed file";
    } catch (const moe::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
        for (const std::string& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
    }
}

fs::path temp_dir() {
    const fs::path d = fs::temp_directory_path() / ("moelab_test_st_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d;
}

}  // namespace

// [SECTION] Format rules

TEST(SafetensorsRules, TooShortForTheSizeField) { expect_rule("abcde", {"shorter than 8 bytes"}); }

TEST(SafetensorsRules, HeaderSizeOverTheCap) { expect_rule(u64le(200u << 20) + "{}", {"header size", "over the cap"}); }

TEST(SafetensorsRules, HeaderSizeBeyondTheFile) { expect_rule(u64le(64) + "{}", {"header size", "beyond the file"}); }

TEST(SafetensorsRules, HeaderNotUtf8) {
    expect_rule(make_file("{\"a\xff\": 1}", ""), {"UTF-8"});
    expect_rule(make_file("{\"\xed\xa0\x80\": 1}", ""), {"UTF-8"});  // an encoded surrogate
    expect_rule(make_file("{\"\xc0\xaf\": 1}", ""), {"UTF-8"});      // an overlong '/'
}

TEST(SafetensorsRules, HeaderMustStartWithBrace) {
    expect_rule(make_file(" {}", ""), {"must start with '{'"});
    expect_rule(make_file("[1]", ""), {"must start with '{'"});
}

TEST(SafetensorsRules, HeaderNotAJsonObject) {
    expect_rule(make_file("{\"a\": ", ""), {"not valid JSON"});
    expect_rule(make_file("{} x", ""), {"not valid JSON"});
}

// Issue 15, hole 1: a number too large for a double threw nlohmann's out_of_range (406).
TEST(SafetensorsRules, NumberTooLargeForADouble) {
    expect_rule(make_file(R"({"a":1e999})", ""), {"header", "not valid JSON"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", zeros(4)), {"header", "not valid JSON"});
}

// Issue 15, hole 2: a shape or data_offsets entry nested 10,000 deep (20 KB) overflowed the
// stack in the dump() of the error message. Now the nesting is refused before parsing.
TEST(SafetensorsRules, DeepNestingIsRefusedBeforeParsing) {
    const std::string deep = std::string(10000, '[') + std::string(10000, ']');
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":)" + deep + R"(,"data_offsets":[0,4]}})", zeros(4)), {"header", "more than 64 deep"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[)" + deep + R"(,4]}})", zeros(4)), {"more than 64 deep"});
    // Brackets inside strings are text, not nesting.
    const std::string h = R"({"__metadata__":{"note":")" + std::string(200, '[') + R"("}})";
    EXPECT_EQ(moe::parse_safetensors(make_file(h, ""), "ok").metadata.at("note"), std::string(200, '['));
    // A shape entry that is an array is named briefly, not dumped.
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,4]}})", zeros(4)), {"shape entry an array of 1"});
}

TEST(SafetensorsRules, RankAndElementCaps) {
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", zeros(4)), {"tensor 'w'", "9 dimensions"});
    // 2^35 U8 elements: no 64-bit overflow, but over the per-tensor cap.
    expect_rule(make_file(R"({"w":{"dtype":"U8","shape":[34359738368],"data_offsets":[0,34359738368]}})", ""), {"tensor 'w'", "over the cap"});
}

TEST(SafetensorsRules, TrailingSpacePaddingIsAllowed) {
    const std::string h = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    float one = 1.0f;
    std::string data(4, '\0');
    std::memcpy(data.data(), &one, 4);
    const moe::SafeTensorsFile f = moe::parse_safetensors(make_file(h + "     ", data), "ok.safetensors");
    ASSERT_EQ(f.tensors.count("w"), 1u);
    EXPECT_EQ(f.tensors.at("w").data[0], 1.0f);
}

TEST(SafetensorsRules, DuplicateKeys) {
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
                {"duplicate key 'w'"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", zeros(4)), {"duplicate key 'dtype'"});
}

TEST(SafetensorsRules, UnknownDtype) {
    expect_rule(make_file(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", zeros(4)), {"tensor 'w'", "unknown dtype 'F7'"});
}

TEST(SafetensorsRules, ShapeEntries) {
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", zeros(4)), {"tensor 'w'", "shape entry -1"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", zeros(4)), {"shape entry 1.5"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,4]}})", zeros(4)), {"shape"});
}

TEST(SafetensorsRules, ShapeProductOverflow) {
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", zeros(4)),
                {"tensor 'w'", "overflow"});
    // Fits in elements, overflows in bytes.
    expect_rule(make_file(R"({"w":{"dtype":"F64","shape":[4294967296,1073741824],"data_offsets":[0,4]}})", zeros(4)), {"overflow"});
}

TEST(SafetensorsRules, DataOffsetsShape) {
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", zeros(4)), {"begin > end"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", zeros(4)), {"data_offsets", "[begin, end]"});
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", zeros(4)), {"data_offsets", "-4"});
}

TEST(SafetensorsRules, ByteSizeMustMatchShape) {
    expect_rule(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", zeros(4)), {"tensor 'w'", "byte size 4 != 2 elements x 4 bytes"});
}

TEST(SafetensorsRules, OffsetsMustTileTheBuffer) {
    // A gap between tensors.
    expect_rule(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", zeros(12)),
                {"tensor 'b'", "contiguous"});
    // Overlapping tensors.
    expect_rule(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", zeros(12)),
                {"tensor 'b'", "contiguous"});
    // Not starting at 0.
    expect_rule(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", zeros(8)), {"tensor 'a'", "start at 0"});
    // Bytes left over after the last tensor.
    expect_rule(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", zeros(12)), {"cover the whole data buffer"});
    // Offsets past the end of the data.
    expect_rule(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", zeros(4)), {"cover the whole data buffer"});
}

TEST(SafetensorsRules, HeaderOrderDoesNotMatterOnlyOffsets) {
    // Keys sorted b < a by name would be wrong order; offsets are what must be contiguous.
    const std::string h = R"({"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}})";
    std::string data = zeros(8);
    const float two = 2.0f;
    std::memcpy(data.data(), &two, 4);
    data[5] = static_cast<char>(0x3f);  // BF16 0x3F80 = 1.0, little-endian
    data[4] = static_cast<char>(0x80);
    const moe::SafeTensorsFile f = moe::parse_safetensors(make_file(h, data), "ok");
    EXPECT_EQ(f.tensors.at("z").data[0], 2.0f);
    EXPECT_EQ(f.tensors.at("a").data[0], 1.0f);
    EXPECT_EQ(f.tensors.at("a").data[1], 0.0f);
    EXPECT_EQ(f.tensors.at("a").dtype, "BF16");
}

TEST(SafetensorsRules, MetadataMustBeStrings) {
    expect_rule(make_file(R"({"__metadata__":{"format":1}})", ""), {"__metadata__", "not a string"});
    const moe::SafeTensorsFile f = moe::parse_safetensors(make_file(R"({"__metadata__":{"format":"pt"}})", ""), "ok");
    EXPECT_EQ(f.metadata.at("format"), "pt");
    EXPECT_TRUE(f.tensors.empty());
}

// [SECTION] Number formats

TEST(SafetensorsFormats, F16KnownBitPatterns) {
    EXPECT_EQ(moe::float_to_f16(1.0f), 0x3C00);
    EXPECT_EQ(moe::float_to_f16(-2.0f), 0xC000);
    EXPECT_EQ(moe::float_to_f16(65504.0f), 0x7BFF);       // largest half
    EXPECT_EQ(moe::float_to_f16(65520.0f), 0x7C00);       // halfway to 65536 rounds to even: infinity
    EXPECT_EQ(moe::float_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
    EXPECT_EQ(moe::float_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
    EXPECT_EQ(moe::float_to_f16(0.1f), 0x2E66);
    EXPECT_EQ(moe::float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);      // tie -> even
    EXPECT_EQ(moe::float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie -> even (up)
    EXPECT_EQ(moe::float_to_f16(INFINITY), 0x7C00);
    EXPECT_EQ(moe::float_to_f16(-0.0f), 0x8000);
    const uint16_t nan = moe::float_to_f16(NAN);
    EXPECT_EQ(nan & 0x7C00, 0x7C00);
    EXPECT_NE(nan & 0x03FF, 0);
    EXPECT_EQ(moe::f16_to_float(0x3555), 0.333251953125f);
    EXPECT_EQ(moe::f16_to_float(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(moe::f16_to_float(0xFC00), -INFINITY);
    EXPECT_TRUE(std::isnan(moe::f16_to_float(0x7E00)));
    // Every finite half survives a round trip through float exactly.
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7C00) == 0x7C00) continue;
        ASSERT_EQ(moe::float_to_f16(moe::f16_to_float(static_cast<uint16_t>(h))), h) << h;
    }
}

TEST(SafetensorsFormats, BF16KnownBitPatterns) {
    EXPECT_EQ(moe::float_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(moe::float_to_bf16(3.14159274f), 0x4049);
    EXPECT_EQ(moe::float_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie -> even (down)
    EXPECT_EQ(moe::float_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie -> even (up)
    EXPECT_EQ(moe::float_to_bf16(-INFINITY), 0xFF80);
    EXPECT_TRUE(std::isnan(moe::bf16_to_float(moe::float_to_bf16(NAN))));
    EXPECT_EQ(moe::bf16_to_float(0xC040), -3.0f);
}

TEST(SafetensorsFormats, ReadsOtherDtypes) {
    const std::string h =
        R"({"e4m3":{"dtype":"F8_E4M3","shape":[3],"data_offsets":[0,3]},"i8":{"dtype":"I8","shape":[1],"data_offsets":[3,4]},)"
        R"("i64":{"dtype":"I64","shape":[1],"data_offsets":[4,12]},"f64":{"dtype":"F64","shape":[1],"data_offsets":[12,20]}})";
    std::string data = zeros(20);
    data[0] = static_cast<char>(0x38);  // 1.0
    data[1] = static_cast<char>(0x7E);  // 448, the largest E4M3
    data[2] = static_cast<char>(0xB8);  // -1.0
    data[3] = static_cast<char>(-5);
    const int64_t big = -123456;
    std::memcpy(data.data() + 4, &big, 8);
    const double half = 0.5;
    std::memcpy(data.data() + 12, &half, 8);
    const moe::SafeTensorsFile f = moe::parse_safetensors(make_file(h, data), "ok");
    EXPECT_EQ(f.tensors.at("e4m3").data, (std::vector<float>{1.0f, 448.0f, -1.0f}));
    EXPECT_EQ(f.tensors.at("i8").data[0], -5.0f);
    EXPECT_EQ(f.tensors.at("i64").data[0], -123456.0f);
    EXPECT_EQ(f.tensors.at("f64").data[0], 0.5f);
}

// [SECTION] Round trips

TEST(SafetensorsRoundTrip, RandomTensorsThroughAFile) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    moe::SafeTensorsFile f;
    f.metadata["format"] = "pt";
    f.metadata["moelab"] = "test \xc3\xa9";  // UTF-8 survives
    for (const char* dtype : {"F32", "F16", "BF16"}) {
        for (int i = 0; i < 3; ++i) {
            moe::SafeTensor t;
            t.dtype = dtype;
            t.shape = {1 + static_cast<int64_t>(rng() % 7), 1 + static_cast<int64_t>(rng() % 5)};
            if (i == 2) t.shape = {0, 3};  // empty tensors are legal
            t.data.resize(static_cast<size_t>(t.numel()));
            for (float& x : t.data) x = normal(rng);
            f.tensors[std::string(dtype) + "." + std::to_string(i)] = t;
        }
    }
    const fs::path path = temp_dir() / "round.safetensors";
    moe::write_safetensors(path.string(), f);
    const std::string bytes = moe::read_file(path.string());
    uint64_t hs = 0;
    std::memcpy(&hs, bytes.data(), 8);
    EXPECT_EQ(hs % 8, 0u) << "header padded to 8 bytes";

    const moe::SafeTensorsFile g = moe::read_safetensors(path.string());
    EXPECT_EQ(g.metadata, f.metadata);
    ASSERT_EQ(g.tensors.size(), f.tensors.size());
    for (const auto& [name, t] : f.tensors) {
        const moe::SafeTensor& u = g.tensors.at(name);
        EXPECT_EQ(u.dtype, t.dtype) << name;
        EXPECT_EQ(u.shape, t.shape) << name;
        ASSERT_EQ(u.data.size(), t.data.size()) << name;
        for (size_t i = 0; i < t.data.size(); ++i) {
            float expect = t.data[i];
            if (t.dtype == "F16") expect = moe::f16_to_float(moe::float_to_f16(expect));
            if (t.dtype == "BF16") expect = moe::bf16_to_float(moe::float_to_bf16(expect));
            EXPECT_EQ(u.data[i], expect) << name << "[" << i << "]";
            // And the rounding error is within half an ulp of the format.
            const float tol = t.dtype == "F32" ? 0.0f : std::fabs(t.data[i]) * (t.dtype == "F16" ? 0x1p-11f : 0x1p-8f) + 1e-7f;
            EXPECT_NEAR(u.data[i], t.data[i], tol);
        }
    }
    fs::remove_all(path.parent_path());
}

// The index checks the same rules and gives views into the bytes, converting nothing.
TEST(SafetensorsRoundTrip, IndexViewsTheBytesWithoutConverting) {
    moe::SafeTensorsFile f;
    f.tensors["a"] = {"BF16", {2, 3}, {1.0f, -2.0f, 0.5f, 3.0f, 0.25f, -8.0f}};
    f.tensors["b"] = {"F32", {2}, {7.0f, -1.5f}};
    const std::string bytes = moe::serialize_safetensors(f);
    const moe::SafeTensorsIndex index = moe::index_safetensors(bytes, "mem.safetensors");
    ASSERT_EQ(index.tensors.size(), 2u);
    const moe::SafeTensorView& a = index.tensors.at("a");
    EXPECT_EQ(a.dtype, "BF16");
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(a.bytes.size(), 12u);
    EXPECT_GE(a.bytes.data(), bytes.data());  // a view into the file, not a copy
    EXPECT_LE(a.bytes.data() + a.bytes.size(), bytes.data() + bytes.size());
    std::vector<float> got(6);
    moe::convert_to_float(a, got.data());
    EXPECT_EQ(got, f.tensors["a"].data);
    // A file one byte short fails the same rule through the index as through the parser.
    const std::string cut = bytes.substr(0, bytes.size() - 1);
    for (int via_index : {0, 1}) {
        try {
            if (via_index) moe::index_safetensors(cut, "cut.safetensors");
            else moe::parse_safetensors(cut, "cut.safetensors");
            ADD_FAILURE() << "a truncated file was accepted";
        } catch (const moe::Error& e) {
            EXPECT_NE(std::string(e.what()).find("data buffer has"), std::string::npos) << e.what();
        }
    }
}

TEST(SafetensorsRoundTrip, MatrixHelpers) {
    moe::Mat m(2, 3);  // (rows, cols)
    m << 1, 2, 3, 4, 5, 6;
    moe::SafeTensorsFile f;
    f.tensors["x"] = moe::mat_to_tensor(m);
    const moe::SafeTensorsFile g = moe::parse_safetensors(moe::serialize_safetensors(f), "mem");
    const moe::Mat back = moe::tensor_to_mat(g.tensors.at("x"), "mem", "x");
    EXPECT_EQ(back, m);
    moe::SafeTensor t3;
    t3.dtype = "F32";
    t3.shape = {1, 1, 1};
    t3.data = {1};
    EXPECT_THROW(moe::tensor_to_mat(t3, "mem", "t3"), moe::Error);
    moe::SafeTensor wrong;
    wrong.dtype = "I8";
    wrong.shape = {1};
    wrong.data = {1};
    moe::SafeTensorsFile h;
    h.tensors["w"] = wrong;
    EXPECT_THROW(moe::serialize_safetensors(h), moe::Error);
}

// [SECTION] file_io

TEST(FileIo, ReadErrorsNameThePathAndReason) {
    try {
        moe::read_file("/nonexistent/moelab/x.bin");
        FAIL();
    } catch (const moe::Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("/nonexistent/moelab/x.bin"), std::string::npos);
        EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
    }
    const fs::path d = temp_dir();
    const fs::path p = d / "ten.bin";
    moe::write_file_atomic(p.string(), "0123456789");
    EXPECT_EQ(moe::read_file(p.string()), "0123456789");
    EXPECT_THROW(moe::read_file(p.string(), 5), moe::Error);  // over the cap
    EXPECT_THROW(moe::read_file(d.string()), moe::Error);     // a directory
    fs::remove_all(d);
}

TEST(FileIo, MappedFileSeesTheBytesAndNamesErrors) {
    const fs::path d = temp_dir();
    const fs::path p = d / "ten.bin";
    moe::write_file_atomic(p.string(), "0123456789");
    {
        moe::MappedFile m = moe::MappedFile::open(p.string(), 1 << 20);
        EXPECT_EQ(m.bytes(), "0123456789");
        moe::MappedFile moved = std::move(m);
        EXPECT_EQ(moved.bytes(), "0123456789");  // the mapping moves with it
        moved.release(moved.bytes().data(), moved.bytes().size());  // a hint: the bytes stay readable
        EXPECT_EQ(moved.bytes(), "0123456789");
    }
    auto expect_error = [](const std::string& path, uint64_t cap, const std::string& what) {
        try {
            moe::MappedFile::open(path, cap);
            ADD_FAILURE() << "mapped " << path;
        } catch (const moe::Error& e) {
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    expect_error(p.string(), 5, "over the cap");
    expect_error(d.string(), 1 << 20, "not a regular file");
    expect_error((d / "missing.bin").string(), 1 << 20, "No such file");
    moe::write_file_atomic((d / "empty.bin").string(), "");
    EXPECT_TRUE(moe::MappedFile::open((d / "empty.bin").string(), 1 << 20).bytes().empty());
    fs::remove_all(d);
}

TEST(FileIo, FailedWriteLosesNothing) {
    const fs::path d = temp_dir();
    const fs::path p = d / "keep.txt";
    moe::write_file_atomic(p.string(), "old contents");
    moe::write_file_atomic(p.string(), "new contents");
    EXPECT_EQ(moe::read_file(p.string()), "new contents");
    // A folder that does not exist: an error naming the path.
    try {
        moe::write_file_atomic((d / "no_such_dir" / "x.txt").string(), "x");
        FAIL();
    } catch (const moe::Error& e) {
        EXPECT_NE(std::string(e.what()).find("no_such_dir"), std::string::npos);
    }
    // Replacing a non-empty directory fails at the rename: the directory and its file survive,
    // and no temporary is left behind.
    const fs::path blocker = d / "blocker";
    fs::create_directories(blocker);
    moe::write_file_atomic((blocker / "inside.txt").string(), "precious");
    EXPECT_THROW(moe::write_file_atomic(blocker.string(), "x"), moe::Error);
    EXPECT_EQ(moe::read_file((blocker / "inside.txt").string()), "precious");
    int n_files = 0;
    for (const auto& e : fs::directory_iterator(d)) n_files += e.path().filename().string().find(".tmp") != std::string::npos;
    EXPECT_EQ(n_files, 0);
    EXPECT_EQ(moe::read_file(p.string()), "new contents");
    fs::remove_all(d);
}
