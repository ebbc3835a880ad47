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
#include <optional>

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
  // At most max_pending wait; more CONNECTs are refused rather than queued without bound.
  boost::asio::thread_pool verifier{1};
  std::atomic<std::size_t> pending{0};
  static constexpr std::size_t max_pending = 256;

  std::atomic<std::uint64_t> failures{0};  // refused CONNECTs, for the admin API
};

}  // namespace broker
