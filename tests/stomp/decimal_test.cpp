#include "stomp/decimal.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

TEST(ParseDecimalTest, ReadsAWholeStringOfDigits) {
  EXPECT_EQ(stomp::parse_decimal<std::uint64_t>("0"), 0u);
  EXPECT_EQ(stomp::parse_decimal<std::uint64_t>("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(stomp::parse_decimal<std::uint16_t>("65535"), 65535u);
}

TEST(ParseDecimalTest, RejectsSignsSpacesAndTrailingText) {
  for (std::string_view bad : {"", " 1", "1 ", "+1", "-1", "1a", "0x10", "1.0"})
    EXPECT_EQ(stomp::parse_decimal<std::uint64_t>(bad), std::nullopt) << bad;
}

TEST(ParseDecimalTest, RejectsValuesOverTheTypesMaximum) {
  EXPECT_EQ(stomp::parse_decimal<std::uint16_t>("65536"), std::nullopt);
  EXPECT_EQ(stomp::parse_decimal<std::uint64_t>("18446744073709551616"), std::nullopt);
}

}  // namespace
