#pragma once

#include "auth/jwt.hpp"
#include "auth/passcode.hpp"
#include "auth/rules.hpp"
#include "broker/config.hpp"

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace broker {

// Authentication (who is connecting) and authorization (what they may do) as configured
// (auth.*), built once at startup. Immutable afterwards except for the verification pool and
// the counters, so sessions on any worker use it without locks. Nothing in auth/ throws on the
// event loop: checks return results, and only the startup helpers documented as such throw.
// Nothing in auth/ logs; every refusal carries a reason for the caller's log line, and the
// client should only ever be told "access refused".
struct security {
  // Throws std::runtime_error naming the setting when the config can't be used (an unreadable
  // key file, a bad rule).
  explicit security(const config::auth_settings& settings);
  ~security();

  bool anonymous = true;
  auth::user_table users;
  std::optional<auth::jwt_verifier> jwt;
  auth::authorizer authorizer = auth::authorizer::allow_all();
  bool close_on_expiry = true;

  // Passcode checks are slow by design (PBKDF2): they run here, never on an event loop.
  // At most max_pending wait in all, and max_pending_per_address from one remote address
  // (auth.max_passcode_checks_per_address), so one host cannot fill the queue and lock
  // everyone else out; more CONNECTs are refused rather than queued without bound.
  boost::asio::thread_pool verifier{1};
  static constexpr std::size_t max_pending = 256;
  const std::size_t max_pending_per_address;

  // Takes a place for one passcode check from `address` (any thread); false, with the reason
  // in *why, when a bound is reached. Every true is matched by one end_passcode_check().
  bool begin_passcode_check(const std::string& address, std::string* why);
  void end_passcode_check(const std::string& address) noexcept;
  std::size_t pending() const;

  std::atomic<std::uint64_t> failures{0};  // refused CONNECTs, for the admin API

 private:
  mutable std::mutex pending_mutex_;
  std::size_t pending_ = 0;
  std::unordered_map<std::string, std::size_t> pending_by_address_;
};

}  // namespace broker
