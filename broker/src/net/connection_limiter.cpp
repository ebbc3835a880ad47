#include "net/connection_limiter.hpp"

#include <fmt/format.h>

namespace broker {

connection_limiter::slot& connection_limiter::slot::operator=(slot&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = other.owner_;
    address_ = std::move(other.address_);
    other.owner_ = nullptr;
  }
  return *this;
}

void connection_limiter::slot::release() noexcept {
  if (owner_ != nullptr) owner_->release(address_);
  owner_ = nullptr;
}

std::optional<connection_limiter::slot> connection_limiter::acquire(const std::string& address,
                                                                    std::string* why) {
  std::lock_guard lock(mutex_);
  if (total_ >= max_total_) {
    if (why) *why = fmt::format("connection limit reached ({} connections)", max_total_);
    return std::nullopt;
  }
  auto& n = per_address_[address];
  if (max_per_address_ != 0 && n >= max_per_address_) {
    if (why)
      *why = fmt::format("connection limit per address reached ({} from {})", max_per_address_,
                         address);
    if (n == 0) per_address_.erase(address);
    return std::nullopt;
  }
  ++n;
  ++total_;
  return slot(this, address);
}

void connection_limiter::release(const std::string& address) noexcept {
  std::lock_guard lock(mutex_);
  --total_;
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

std::size_t connection_limiter::active() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace broker
