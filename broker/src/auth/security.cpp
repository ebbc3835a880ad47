#include "auth/security.hpp"

#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <stdexcept>

namespace broker {

namespace {

std::string read_file(const std::filesystem::path& path, std::string_view setting) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{} {}: cannot read", setting, path.string()));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

security::security(const config::auth_settings& s)
    : anonymous(s.anonymous),
      close_on_expiry(s.jwt.close_on_expiry),
      max_pending_per_address(s.max_passcode_checks_per_address) {
  for (const auto& u : s.users) {
    // Rules name the anonymous principal "anonymous"; a static user of that name would be
    // granted what is meant for everyone who connects without credentials, or the reverse.
    if (u.name == auth::anonymous_name)
      throw std::runtime_error(
          fmt::format("auth.users {}: the name is reserved for the anonymous principal", u.name));
    std::string error;
    auto hash = auth::parse_passcode_hash(u.passcode, &error);
    if (!hash) throw std::runtime_error(fmt::format("auth.users {}: passcode {}", u.name, error));
    if (!users.add(u.name, std::move(*hash), u.roles))
      throw std::runtime_error(fmt::format("auth.users {}: listed twice", u.name));
  }
  if (s.jwt.enabled) {
    auth::jwt_settings j;
    j.algorithm = *auth::parse_jwt_algorithm(s.jwt.algorithm);  // validated by the loader
    j.key = j.algorithm == auth::jwt_algorithm::hs256
                ? s.jwt.secret
                : read_file(s.jwt.public_key_file, "auth.jwt.public_key_file");
    if (!s.jwt.issuer.empty()) j.issuer = s.jwt.issuer;
    if (!s.jwt.audience.empty()) j.audience = s.jwt.audience;
    j.leeway = std::chrono::duration_cast<std::chrono::seconds>(s.jwt.leeway);
    j.user_claim = s.jwt.user_claim;
    j.roles_claim = s.jwt.roles_claim;
    j.grants_claim = s.jwt.grants_claim;
    std::string error;
    jwt = auth::jwt_verifier::create(std::move(j), &error);
    if (!jwt) throw std::runtime_error("auth.jwt: " + error);
  }
  // Without rules everything is allowed, for anonymous development setups. Not once tokens
  // are accepted: a token's `stomp` grants say what it may do, and allowing everything would
  // ignore them (every token holder could read every room). Then, rules or not, only what a
  // rule or the token grants is allowed.
  if (!s.rules.empty() || s.jwt.enabled) {
    std::vector<auth::rule> rules;
    for (const auto& r : s.rules)
      rules.push_back({.users = r.users,
                       .roles = r.roles,
                       .subjects = r.subjects,
                       .subscribe = r.subscribe,
                       .send = r.send});
    auto made = auth::authorizer::create(rules);
    if (!made.value) {
      std::string all;
      for (const auto& e : made.errors)
        all += fmt::format("{}auth.rules[{}]: {}", all.empty() ? "" : "; ", e.rule, e.what);
      throw std::runtime_error(all);
    }
    authorizer = std::move(*made.value);
  }
}

security::~security() { verifier.join(); }

bool security::begin_passcode_check(const std::string& address, std::string* why) {
  std::lock_guard lock(pending_mutex_);
  if (pending_ >= max_pending) {
    *why = "too many passcode checks waiting";
    return false;
  }
  auto& mine = pending_by_address_[address];
  if (mine >= max_pending_per_address) {
    if (mine == 0) pending_by_address_.erase(address);
    *why = fmt::format("too many passcode checks waiting from {}", address);
    return false;
  }
  ++mine;
  ++pending_;
  return true;
}

void security::end_passcode_check(const std::string& address) noexcept {
  std::lock_guard lock(pending_mutex_);
  --pending_;
  auto it = pending_by_address_.find(address);
  if (it != pending_by_address_.end() && --it->second == 0) pending_by_address_.erase(it);
}

std::size_t security::pending() const {
  std::lock_guard lock(pending_mutex_);
  return pending_;
}

}  // namespace broker
