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
  const bool topic = destination.starts_with("/topic/");
  return {topic, topic ? default_retention_ : storage::retention{}};
}

}  // namespace broker
