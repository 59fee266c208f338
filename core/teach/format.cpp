// One number formatter (format.h).
#include "core/teach/format.h"

#include <cmath>
#include <cstdio>

namespace moe {

namespace {

// v scaled by the largest of 1e3^1..4 it reaches; three significant digits, then the prefix.
std::string scaled(double v, const char* const prefixes[4], std::string_view sep, std::string_view unit) {
    if (!std::isfinite(v)) {
        std::string out = std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
        if (!unit.empty()) out.append(sep).append(unit);
        return out;
    }
    const double a = std::fabs(v);
    double x = v;
    const char* prefix = "";
    for (int i = 3; i >= 0; --i) {
        const double scale = std::pow(1e3, i + 1);
        if (a >= scale) {
            x = v / scale;
            prefix = prefixes[i];
            break;
        }
    }
    char buf[64];
    const double ax = std::fabs(x);
    if (*prefix == '\0') std::snprintf(buf, sizeof buf, "%.0f", x);
    else if (ax >= 100) std::snprintf(buf, sizeof buf, "%.0f", x);
    else if (ax >= 10) std::snprintf(buf, sizeof buf, "%.1f", x);
    else std::snprintf(buf, sizeof buf, "%.2f", x);
    std::string out(buf);
    if (*prefix != '\0' || !unit.empty()) out.append(sep);
    return out.append(prefix).append(unit);
}

}  // namespace

std::string format_count(double v) {
    static const char* const kPrefixes[4] = {"K", "M", "B", "T"};
    return scaled(v, kPrefixes, "", "");
}

std::string format_si(double v, std::string_view unit) {
    static const char* const kPrefixes[4] = {"k", "M", "G", "T"};
    return scaled(v, kPrefixes, " ", unit);
}

}  // namespace moe
