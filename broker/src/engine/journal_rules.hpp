#pragma once

#include "broker/config.hpp"
#include "broker/destination_pattern.hpp"
#include "storage/journal.hpp"

#include <string_view>
#include <vector>

namespace broker {

// Which destinations keep history and for how long: journal.destinations (first matching
// rule wins), else /topic/ destinations with the default retention and /queue/ ones not at
// all. The same rules whichever engine stores the history. Immutable, so thread-safe.
class journal_rules {
 public:
  struct policy {
    bool journaled = false;
    storage::retention retention;
  };

  // The config loader has validated every pattern.
  explicit journal_rules(const config::journal_settings& settings);

  policy policy_for(std::string_view destination) const;

 private:
  struct rule {
    destination_pattern pattern;
    policy value;
  };
  std::vector<rule> rules_;
  storage::retention default_retention_;  // journal.default_max_messages, default_max_age
};

}  // namespace broker
