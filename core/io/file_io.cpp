// POSIX implementation of core/io/file_io.h (Linux and macOS).
#include "core/io/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"

namespace moe {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Closes a descriptor on every path out of a function.
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

// Opens path read-only into f (retrying on EINTR) and stats it; throws naming the path and the reason.
void open_for_reading(const std::string& path, Fd& f, struct stat& st) {
    do {
        f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (f.fd < 0 && errno == EINTR);
    if (f.fd < 0) throw Error(path, "", "cannot open for reading: " + errno_text(errno));
    if (::fstat(f.fd, &st) != 0) throw Error(path, "", "cannot stat: " + errno_text(errno));
}

}  // namespace

std::string read_file(const std::string& path, uint64_t max_bytes) {
    Fd f;
    struct stat st {};
    open_for_reading(path, f, st);
    if (S_ISDIR(st.st_mode)) throw Error(path, "", "is a directory", "give the path of a file");
    if (S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) > max_bytes)
        throw Error(path, "", "file is " + std::to_string(st.st_size) + " bytes, over the cap of " +
                                  std::to_string(max_bytes) + " bytes");

    std::string out;
    if (S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
    char buf[1 << 16];
    for (;;) {
        const ssize_t n = ::read(f.fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw Error(path, "", "read failed: " + errno_text(errno));
        }
        if (n == 0) break;
        // Non-regular files (pipes) have no size up front: enforce the cap while reading.
        if (out.size() + static_cast<size_t>(n) > max_bytes)
            throw Error(path, "", "more than the cap of " + std::to_string(max_bytes) + " bytes");
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
    namespace fs = std::filesystem;
    if (path.empty()) throw Error("write_file_atomic", "path", "is empty", "give a file path");
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");

    // A random suffix so two writers of the same file never share a temporary.
    std::random_device rd;
    char suffix[32];
    std::snprintf(suffix, sizeof(suffix), ".tmp%08x", static_cast<unsigned>(rd()));
    const fs::path tmp = dir / (target.filename().string() + suffix);

    Fd f;
    do {
        f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    } while (f.fd < 0 && errno == EINTR);
    if (f.fd < 0) throw Error(path, "", "cannot write: " + errno_text(errno), "check that the folder exists and is writable");

    auto fail = [&](const std::string& what) {
        const int err = errno;
        ::close(f.fd);
        f.fd = -1;
        ::unlink(tmp.c_str());
        throw Error(path, "", what + ": " + errno_text(err));
    };
    size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(f.fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("write failed");
        }
        done += static_cast<size_t>(n);
    }
    if (::fsync(f.fd) != 0) fail("fsync failed");
    if (::close(f.fd) != 0) {
        f.fd = -1;
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(path, "", "close failed: " + errno_text(err));
    }
    f.fd = -1;
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw Error(path, "", "cannot replace the file: " + errno_text(err));
    }
    // Make the rename itself durable; a failure here loses nothing, so it is not an error.
    Fd d;
    d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d.fd >= 0) ::fsync(d.fd);
}

MappedFile MappedFile::open(const std::string& path, uint64_t max_bytes) {
    Fd f;
    struct stat st {};
    open_for_reading(path, f, st);
    if (!S_ISREG(st.st_mode)) throw Error(path, "", "is not a regular file", "give the path of a file");
    if (static_cast<uint64_t>(st.st_size) > max_bytes)
        throw Error(path, "", "file is " + std::to_string(st.st_size) + " bytes, over the cap of " + std::to_string(max_bytes) + " bytes");
    MappedFile m;
    m.path_ = path;
    m.size_ = static_cast<size_t>(st.st_size);
    if (m.size_ == 0) return m;  // mmap refuses a length of 0; there is nothing to read anyway
    void* a = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, f.fd, 0);
    if (a == MAP_FAILED) throw Error(path, "", "cannot be mapped into memory: " + errno_text(errno));
    m.addr_ = a;
    // The loader reads each tensor front to back once: read ahead aggressively.
    ::madvise(a, m.size_, MADV_SEQUENTIAL);
    return m;  // the descriptor closes; the mapping stays valid
}

MappedFile::MappedFile(MappedFile&& o) noexcept : addr_(o.addr_), size_(o.size_), path_(std::move(o.path_)) {
    o.addr_ = nullptr;
    o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
    if (this != &o) {
        if (addr_) ::munmap(addr_, size_);
        addr_ = o.addr_;
        size_ = o.size_;
        path_ = std::move(o.path_);
        o.addr_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

MappedFile::~MappedFile() {
    if (addr_) ::munmap(addr_, size_);
}

void MappedFile::release(const char* p, uint64_t n) const {
    if (!addr_ || n == 0) return;
    // Whole pages inside [p, p + n) only: the neighbours' first and last pages may still be read.
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // a hint: failure changes nothing
}

}  // namespace moe
