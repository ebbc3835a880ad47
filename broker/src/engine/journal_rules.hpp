#pragma once

#include "broker/config.hpp"
#include "broker/destination_pattern.hpp"
#include "storage/journal.hpp"

#include <string_view>
#include <vector>

namespace broker {

// Which destinations the journal keeps, and for how long: journal.destinations (first
// matching rule wins), else every /topic/ destination, with the default retention, and every
// /queue/ one (a durable queue: its messages stored until acknowledged, never trimmed). The
// same rules whichever engine stores them. Immutable, so thread-safe.
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
