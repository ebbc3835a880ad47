#include "engine/engine.hpp"

#include "routing/presence.hpp"

namespace broker {

namespace {

struct engine_error_category final : std::error_category {
  const char* name() const noexcept override { return "stompd.engine"; }
  std::string message(int e) const override {
    switch (static_cast<engine_errc>(e)) {
      case engine_errc::queue_full:
        return "the queue is full (limits.max_queue_messages)";
    }
    return "unknown engine error";
  }
};

}  // namespace

const std::error_category& engine_category() noexcept {
  static const engine_error_category category;
  return category;
}

std::vector<engine::presence_info> engine::presence_on_node(
    const presence& tally, std::span<const std::string> destinations, std::size_t limit) {
  std::vector<presence_info> out;
  out.reserve(destinations.size());
  for (const auto& d : destinations) out.push_back({tally.count(d), tally.members(d, limit)});
  return out;
}

}  // namespace broker
