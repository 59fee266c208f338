// core/teach/format.h: the one number formatter the app, lessons, parameter counter and CLI share.
#include <gtest/gtest.h>

#include <limits>

#include "core/teach/format.h"

namespace moe {
namespace {

TEST(Format, CountsReadWithThreeSignificantDigits) {
    EXPECT_EQ(format_count(0), "0");
    EXPECT_EQ(format_count(512), "512");
    EXPECT_EQ(format_count(999), "999");
    EXPECT_EQ(format_count(1000), "1.00K");
    EXPECT_EQ(format_count(1234), "1.23K");
    EXPECT_EQ(format_count(890e3), "890K");
    EXPECT_EQ(format_count(1.28e6), "1.28M");
    EXPECT_EQ(format_count(46.7e9), "46.7B");
    EXPECT_EQ(format_count(1.04e12), "1.04T");
    EXPECT_EQ(format_count(-2500), "-2.50K");
}

TEST(Format, SiUnitsAreDecimalWithASpace) {
    EXPECT_EQ(format_bytes(512), "512 B");
    EXPECT_EQ(format_bytes(1.5e9), "1.50 GB");
    EXPECT_EQ(format_bytes(93.4e9), "93.4 GB");
    EXPECT_EQ(format_si(3.41e9, "FLOP"), "3.41 GFLOP");
    EXPECT_EQ(format_si(2e3, "B"), "2.00 kB");
}

TEST(Format, NonFiniteValuesSaySo) {
    EXPECT_EQ(format_count(std::numeric_limits<double>::infinity()), "inf");
    EXPECT_EQ(format_bytes(std::numeric_limits<double>::quiet_NaN()), "nan B");
}

}  // namespace
}  // namespace moe
