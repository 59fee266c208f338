// Numbers as a person reads them from the back of a classroom: three significant digits and a
// unit. One formatter for the app, the lessons, the parameter counter and the CLI, so the same
// model shows the same "46.7B" everywhere.
#pragma once

#include <string>
#include <string_view>

namespace moe {

// Counts with K, M, B, T: 512 -> "512", 1234 -> "1.23K", 890e3 -> "890K", 46.7e9 -> "46.7B".
std::string format_count(double v);

// Decimal SI prefixes before a unit: (3.41e9, "FLOP") -> "3.41 GFLOP", (1.5e9, "B") -> "1.50 GB".
// Decimal, as model cards and download sizes are quoted.
std::string format_si(double v, std::string_view unit);
inline std::string format_bytes(double v) { return format_si(v, "B"); }

}  // namespace moe
