#include "engine/engine.hpp"

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

}  // namespace broker
