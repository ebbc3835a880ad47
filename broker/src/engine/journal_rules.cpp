#include "engine/journal_rules.hpp"

namespace broker {

journal_rules::journal_rules(const config::journal_settings& settings)
    : default_retention_{settings.default_max_messages, settings.default_max_age} {
  for (const auto& r : settings.destinations)
    rules_.push_back({*destination_pattern::parse(r.pattern, nullptr),
                      {r.journaled, {r.max_messages, r.max_age}}});
}

journal_rules::policy journal_rules::policy_for(std::string_view destination) const {
  for (const auto& r : rules_)
    if (r.pattern.matches(destination)) return r.value;
  // A queue's messages are kept until acknowledged: no retention.
  if (destination.starts_with("/queue/")) return {true, {}};
  return {true, default_retention_};
}

}  // namespace broker
