// Deterministic corpus from installed Debian files (see corpus.h).
//
// [SECTION] Documents from files
// [SECTION] Generated numbers
// [SECTION] Build
#include "core/models/corpus.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/io/file_io.h"

namespace moe {

namespace fs = std::filesystem;

bool is_valid_utf8(const std::string& s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int len = 0;
        if (c < 0x80) len = 1;
        else if ((c & 0xE0) == 0xC0 && c >= 0xC2) len = 2;
        else if ((c & 0xF0) == 0xE0) len = 3;
        else if ((c & 0xF8) == 0xF0 && c <= 0xF4) len = 4;
        else return false;
        if (i + len > n) return false;
        for (int j = 1; j < len; ++j)
            if ((static_cast<unsigned char>(s[i + j]) & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

namespace {

// [SECTION] Documents from files
// Regular files (not links, not the strfile indexes .dat/.u8) of a folder, sorted by name so the
// order does not depend on the file system.
std::vector<fs::path> fortune_files(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(dir, "fortunes", "is not a folder", "install the fortune packages: scripts/install-deps.sh");
    std::vector<fs::path> files;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        if (e.is_symlink() || !e.is_regular_file()) continue;
        const std::string ext = e.path().extension().string();
        if (ext == ".dat" || ext == ".u8") continue;
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

// Fortune files hold entries separated by lines of a single '%'.
void split_fortunes(const std::string& text, std::vector<std::string>& docs) {
    size_t pos = 0;
    std::string cur;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line == "%") {
            if (!cur.empty()) docs.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += line;
            cur += '\n';
        }
    }
    if (!cur.empty()) docs.push_back(std::move(cur));
}

std::vector<std::string> fortune_docs(const std::string& dir, CorpusSource& src) {
    std::vector<std::string> docs;
    for (const fs::path& p : fortune_files(dir)) {
        std::string text;
        try {
            text = read_file(p.string(), 64 << 20);
        } catch (const Error&) {
            ++src.skipped_files;
            continue;
        }
        if (!is_valid_utf8(text)) {  // old KOI8-R or Latin-1 files: skipped, counted
            ++src.skipped_files;
            continue;
        }
        split_fortunes(text, docs);
    }
    return docs;
}

// A deterministic selection of C headers: every .h under the folder, sorted by path, each cut
// at a line end to max_file bytes.
std::vector<std::string> c_docs(const std::string& dir, int64_t max_file, int64_t cap, CorpusSource& src) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw Error(dir, "C headers", "is not a folder", "expected the system headers (libc6-dev)");
    std::vector<fs::path> files;
    for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
         it != end; it.increment(ec)) {
        if (ec) break;
        if (it->is_symlink() || !it->is_regular_file() || it->path().extension() != ".h") continue;
        files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    std::vector<std::string> docs;
    int64_t taken = 0;
    for (const fs::path& p : files) {
        std::string text;
        try {
            text = read_file(p.string(), 16 << 20);
        } catch (const Error&) {
            ++src.skipped_files;
            continue;
        }
        if (!is_valid_utf8(text)) {
            ++src.skipped_files;
            continue;
        }
        if (static_cast<int64_t>(text.size()) > max_file) {
            const size_t cut = text.rfind('\n', static_cast<size_t>(max_file));
            text.resize(cut == std::string::npos ? static_cast<size_t>(max_file) : cut + 1);
        }
        if (text.empty()) continue;
        taken += static_cast<int64_t>(text.size()) + 1;
        docs.push_back(std::move(text));
        if (taken >= cap) break;  // add_source stops here too: no need to read the rest
    }
    return docs;
}

// [SECTION] Generated numbers
std::vector<std::string> number_docs(uint64_t seed, int64_t max_bytes) {
    std::mt19937_64 rng(seed);
    auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    static const char* kMonths[] = {"January", "February", "March", "April", "May", "June", "July",
                                    "August", "September", "October", "November", "December"};
    std::vector<std::string> docs;
    int64_t total = 0;
    char buf[160];
    while (total < max_bytes) {
        std::string doc;
        switch (uni(0, 3)) {
            case 0:  // arithmetic
                for (int i = 0; i < 8; ++i) {
                    const int a = uni(0, 999), b = uni(0, 999);
                    switch (uni(0, 2)) {
                        case 0: std::snprintf(buf, sizeof buf, "%d + %d = %d\n", a, b, a + b); break;
                        case 1: std::snprintf(buf, sizeof buf, "%d - %d = %d\n", a, b, a - b); break;
                        default: std::snprintf(buf, sizeof buf, "%d * %d = %d\n", a % 100, b % 100, (a % 100) * (b % 100)); break;
                    }
                    doc += buf;
                }
                break;
            case 1: {  // a multiplication table
                const int n = uni(2, 19);
                for (int i = 1; i <= 10; ++i) {
                    std::snprintf(buf, sizeof buf, "%2d x %2d = %3d\n", i, n, i * n);
                    doc += buf;
                }
                break;
            }
            case 2:  // dates in three formats
                for (int i = 0; i < 6; ++i) {
                    const int y = uni(1900, 2099), m = uni(1, 12), d = uni(1, 28);
                    switch (uni(0, 2)) {
                        case 0: std::snprintf(buf, sizeof buf, "%04d-%02d-%02d\n", y, m, d); break;
                        case 1: std::snprintf(buf, sizeof buf, "%02d.%02d.%04d\n", d, m, y); break;
                        default: std::snprintf(buf, sizeof buf, "%s %d, %d\n", kMonths[m - 1], d, y); break;
                    }
                    doc += buf;
                }
                break;
            default: {  // a small table of squares and cubes
                const int start = uni(1, 90);
                doc += "n\tn^2\tn^3\n";
                for (int i = start; i < start + 8; ++i) {
                    std::snprintf(buf, sizeof buf, "%d\t%d\t%d\n", i, i * i, i * i * i);
                    doc += buf;
                }
                break;
            }
        }
        total += static_cast<int64_t>(doc.size());
        docs.push_back(std::move(doc));
    }
    return docs;
}

// [SECTION] Build
void add_source(Corpus& c, const std::string& name, std::vector<std::string> docs, int64_t cap, int val_every,
                CorpusSource src, const std::string& where) {
    src.name = name;
    if (docs.empty()) throw Error(where, name, "yielded no documents", "install the corpus packages: scripts/install-deps.sh");
    int64_t taken = 0;
    for (size_t i = 0; i < docs.size() && taken < cap; ++i) {
        const std::string& d = docs[i];
        taken += static_cast<int64_t>(d.size()) + 1;
        std::string& dst = (static_cast<int>(i % val_every) == val_every - 1) ? c.valid : c.train;
        dst += d;
        dst += '\n';
        (&dst == &c.valid ? src.valid_bytes : src.train_bytes) += static_cast<int64_t>(d.size()) + 1;
        ++src.n_docs;
    }
    c.sources.push_back(src);
}

}  // namespace

Corpus build_corpus(const CorpusOptions& o) {
    if (o.val_every < 2) throw Error("CorpusOptions", "val_every", "is " + std::to_string(o.val_every), "expected >= 2");
    Corpus c;
    const std::string& f = o.fortunes_dir;
    CorpusSource s;
    std::vector<std::string> docs;
    s = {};
    docs = fortune_docs(f, s);
    add_source(c, "english", std::move(docs), o.max_english, o.val_every, s, f);
    s = {};
    docs = fortune_docs(f + "/de", s);
    add_source(c, "german", std::move(docs), o.max_german, o.val_every, s, f + "/de");
    s = {};
    docs = fortune_docs(f + "/es", s);
    add_source(c, "spanish", std::move(docs), o.max_spanish, o.val_every, s, f + "/es");
    s = {};
    docs = fortune_docs(f + "/ru", s);
    add_source(c, "russian", std::move(docs), o.max_russian, o.val_every, s, f + "/ru");
    s = {};
    docs = c_docs(o.include_dir, o.max_c_file, o.max_c, s);
    add_source(c, "c", std::move(docs), o.max_c, o.val_every, s, o.include_dir);
    add_source(c, "numbers", number_docs(o.seed, o.max_numbers), o.max_numbers, o.val_every, {}, "numbers");
    return c;
}

}  // namespace moe
