// The training corpus of the tiny language model, built deterministically from files Debian
// installs (nothing is downloaded, nothing is committed): English, German, Spanish and Russian
// fortunes, C headers from /usr/include, and generated numbers (arithmetic, tables, dates).
//
// Every source is cut into documents (one fortune; one header file; one block of numbers);
// document i of a source goes to validation when i % val_every == val_every - 1, else to
// training. The same installed packages give the same bytes, so the quality test can rebuild the
// validation slice without retraining.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

struct CorpusOptions {
    std::string fortunes_dir = "/usr/share/games/fortunes";
    std::string include_dir = "/usr/include";
    int val_every = 20;                      // every 20th document goes to validation
    int64_t max_english = 2600000;           // byte caps per source (documents taken in order)
    int64_t max_german = 1200000;
    int64_t max_spanish = 900000;
    int64_t max_russian = 1200000;
    int64_t max_c = 1200000;
    int64_t max_c_file = 12000;              // a header longer than this is cut at a line end
    int64_t max_numbers = 500000;
    uint64_t seed = 7;                       // for the generated numbers
};

struct CorpusSource {
    std::string name;           // "english", "german", "spanish", "russian", "c", "numbers"
    int64_t n_docs = 0;
    int64_t train_bytes = 0, valid_bytes = 0;
    int64_t skipped_files = 0;  // not valid UTF-8 (e.g. KOI8-R) or unreadable
};

struct Corpus {
    std::string train;  // documents joined by '\n'
    std::string valid;
    std::vector<CorpusSource> sources;
};

// Throws moe::Error naming the folder when a source folder is missing or yields nothing.
Corpus build_corpus(const CorpusOptions& opt = {});

bool is_valid_utf8(const std::string& s);

}  // namespace moe
