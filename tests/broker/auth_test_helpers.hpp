#pragma once

// Helpers shared by the tests of broker/src/auth/ (one test file per header there).

#include "auth/rules.hpp"

#include <gtest/gtest.h>

#include <string_view>
#include <utility>
#include <vector>

namespace broker::auth {

inline bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The authorizer for rules the test expects to be valid; each problem is a test failure.
inline authorizer make_authorizer(const std::vector<rule>& rules) {
  auto r = authorizer::create(rules);
  for (const auto& e : r.errors) ADD_FAILURE() << "rule " << e.rule << ": " << e.what;
  return std::move(*r.value);
}

}  // namespace broker::auth
