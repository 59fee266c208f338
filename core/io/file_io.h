// Whole-file reads and crash-safe writes, shared by every loader and exporter in moelab.
//
// Failures throw moe::Error naming the path and the operating system's reason (errno text), so
// the GUI and the CLI can show them without closing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace moe {

// Default cap for read_file: large enough for the safetensors files moelab writes and reads,
// small enough that a wrong path to a multi-GB checkpoint fails clearly instead of swapping.
inline constexpr uint64_t kDefaultReadCap = uint64_t(4) << 30;  // 4 GiB

// Reads the whole file as bytes. Throws moe::Error if it cannot be opened or read, or if it is
// larger than max_bytes (naming the size and the cap).
std::string read_file(const std::string& path, uint64_t max_bytes = kDefaultReadCap);

// Writes bytes to a temporary file in the same folder, fsyncs it, then renames it over path, so
// a reader sees either the old file or the whole new one, never half of it. On failure the
// temporary file is removed and whatever was at path is left untouched.
void write_file_atomic(const std::string& path, std::string_view bytes);

// A file mapped read-only into memory (mmap), unmapped when this is destroyed: a multi-GB
// checkpoint shard is read where it lies, its pages in the page cache (reclaimable, shared),
// not copied into the process. Move-only.
class MappedFile {
public:
    // Throws moe::Error naming the path and the reason when it cannot be opened, is not a regular
    // file, is larger than max_bytes or cannot be mapped. An empty file maps to no bytes.
    static MappedFile open(const std::string& path, uint64_t max_bytes);
    MappedFile() = default;
    MappedFile(MappedFile&& o) noexcept;
    MappedFile& operator=(MappedFile&& o) noexcept;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    ~MappedFile();

    std::string_view bytes() const { return {static_cast<const char*>(addr_), size_}; }
    const std::string& path() const { return path_; }
    // Tells the kernel the pages of [p, p + n) are done with (read once, then packed): they leave
    // this process's resident set at once instead of lingering until the unmap.
    void release(const char* p, uint64_t n) const;

private:
    void* addr_ = nullptr;
    size_t size_ = 0;
    std::string path_;
};

}  // namespace moe
