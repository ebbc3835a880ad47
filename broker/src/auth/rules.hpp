#pragma once

#include "auth/principal.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// Authorization rules: which principal may SUBSCRIBE or SEND where.
namespace broker::auth {

// One grant from the config file. It applies to a principal named in `users` or `subjects`,
// or holding one of `roles`. The kinds of principal (principal_kind) are named apart, so one
// cannot borrow another's grants by taking its name:
//  - `users` names static users (auth.users); "anonymous" names the anonymous principal
//    (auth.anonymous); "*" is every authenticated principal: static users and token
//    holders, never the anonymous one.
//  - `subjects` names bearer tokens' subjects; "*" is every token holder.
//  - `roles` match static users' and tokens' roles; the anonymous principal has none.
// Patterns use destination_pattern syntax plus the placeholder `{user}`, replaced by the
// principal's name before matching: for "/topic/dm.{user}.*", alice may subscribe to
// /topic/dm.alice.x, not /topic/dm.bob.x.
//
// A name that is not placeholder-safe (empty, or containing '.', '/' or '*') would change the
// pattern's shape: "a.*" would turn "/topic/dm.{user}" into "/topic/dm.a.*". Such names are
// not escaped but refused: `{user}` patterns grant them nothing, their other grants stay.
// (Escaping would buy little: a destination segment never contains '.' or '/', and pattern
// syntax has no literal '*'.)
struct rule {
  // Initialized, so a designated initializer may leave any of them out without a warning.
  std::vector<std::string> users = {};
  std::vector<std::string> roles = {};
  std::vector<std::string> subjects = {};
  std::vector<std::string> subscribe = {};
  std::vector<std::string> send = {};
};

struct rule_error {
  std::size_t rule;  // index into the rules passed to authorizer::create()
  std::string what;  // "subscribe[1]: '*' and '**' must be whole segments, ..."
};

struct authorizer_result;

// Decides SUBSCRIBE and SEND. A principal may do something when a rule that applies to it
// grants it, or its token grants it; nothing else is allowed. Made once at startup;
// permissions_for() is const and thread-safe. A default-constructed authorizer has no rules,
// like create({}): only token grants allow anything.
class authorizer {
 public:
  // Every principal may do everything: for an anonymous development setup.
  static authorizer allow_all();

  // Parses every pattern once. With no rules, only token grants allow anything. Collects
  // every problem (bad pattern, unknown placeholder, rule applying to nobody or granting
  // nothing) rather than stopping at the first.
  static authorizer_result create(const std::vector<rule>& rules);

  // Once per connection, at CONNECT: the rules applying to `p` with `{user}` expanded, plus
  // p.token_grants. Keep the result with the session and ask it on every frame.
  permissions permissions_for(const principal& p) const;

  // Convenience for one-off checks; a session should hold permissions_for() instead.
  bool allows(const principal& p, action a, std::string_view destination) const;

 private:
  struct compiled_rule {
    std::vector<std::string> users;     // "*" already folded into any_user
    bool any_user = false;              // every static user and token holder
    bool anonymous = false;             // users: ["anonymous"]
    std::vector<std::string> subjects;  // "*" already folded into any_subject
    bool any_subject = false;
    std::vector<std::string> roles;
    // Patterns without placeholders, parsed once and shared with every permissions object.
    std::vector<permissions::entry_ptr> subscribe, send;
    // Patterns with `{user}`, checked at startup, expanded and parsed per principal.
    std::vector<std::string> subscribe_templates, send_templates;
  };
  bool applies(const compiled_rule& r, const principal& p) const;

  bool allow_all_ = false;
  std::vector<compiled_rule> rules_;
};

struct authorizer_result {
  std::optional<authorizer> value;  // when errors is empty
  std::vector<rule_error> errors;
};

}  // namespace broker::auth
