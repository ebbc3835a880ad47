#pragma once

#include "broker/destination_pattern.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Who a connection authenticated as, and what it may do. Made at CONNECT (by user_table,
// jwt_verifier and authorizer), then owned by the session and used only on its worker's thread;
// nothing here throws or logs.
namespace broker::auth {

enum class action { subscribe, send };

// Destination patterns a principal may subscribe to or send to, already expanded for that
// principal (no `{user}` left). The session keeps one for its connection: it is made once at
// CONNECT by authorizer::permissions_for(), and every SUBSCRIBE and SEND asks allows().
//
// Patterns shared by many connections (rules without `{user}`) are held by shared_ptr, so an
// idle connection costs a pointer per applicable pattern, not a copy of it.
class permissions {
 public:
  // Grants nothing.
  permissions() = default;
  // Grants everything: the anonymous development setup (authorizer::allow_all()).
  static permissions all();

  // Cost: literal patterns are one string compare; a wildcard pattern first compares its
  // literal prefix (up to the first '*' segment) and only then runs the segment matcher, so a
  // destination in another subtree is rejected without allocating.
  bool allows(action a, std::string_view destination) const;

  bool grants_everything() const noexcept { return all_; }
  bool empty() const noexcept { return !all_ && subscribe_.empty() && send_.empty(); }

  // Adds a pattern; `{user}` must already be expanded.
  void add(action a, destination_pattern pattern);
  void merge(const permissions& other);

  // The pattern texts, for logs and the admin API.
  std::vector<std::string> patterns(action a) const;

 private:
  struct entry {
    destination_pattern pattern;
    std::size_t prefix_bytes;  // text before the separator preceding the first '*' segment
    bool literal;              // no '*' segment: equal text is the only match
  };
  using entry_ptr = std::shared_ptr<const entry>;
  friend class authorizer;  // shares its rule entries instead of copying them (rules.hpp)

  static entry_ptr make_entry(destination_pattern pattern);
  std::vector<entry_ptr>& list(action a) { return a == action::subscribe ? subscribe_ : send_; }
  const std::vector<entry_ptr>& list(action a) const {
    return a == action::subscribe ? subscribe_ : send_;
  }

  bool all_ = false;
  std::vector<entry_ptr> subscribe_;
  std::vector<entry_ptr> send_;
};

// The anonymous principal's name, in rules and logs; no static user may take it.
inline constexpr std::string_view anonymous_name = "anonymous";

// How a principal authenticated. Rules name each kind separately (rules.hpp): a token whose
// subject equals a static user's name is not that user, and "*" is not the anonymous one.
enum class principal_kind {
  anonymous,  // auth.anonymous: no credentials; named "anonymous" in rules
  user,       // a static user of auth.users, checked by passcode; rules' `users`
  token,      // a bearer token's subject; rules' `subjects`
};

// Who a connection authenticated as.
struct principal {
  // Initialized, so a designated initializer may leave any of them out without a warning.
  std::string user = {};                // never empty
  std::vector<std::string> roles = {};  // matched against authorization rules' `roles`
  // When a bearer token stops being valid (its `exp`); nullopt for passcode users and for
  // tokens without `exp`. The session should refuse frames, or disconnect, after it.
  std::optional<std::chrono::system_clock::time_point> expires_at = {};
  // What the bearer token itself grants (its `stomp` claim), `{user}` already expanded.
  permissions token_grants = {};
  principal_kind kind = principal_kind::user;
};

}  // namespace broker::auth
