#include "auth/rules.hpp"

#include "auth/placeholder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace broker::auth {

authorizer authorizer::allow_all() {
  authorizer a;
  a.allow_all_ = true;
  return a;
}

authorizer_result authorizer::create(const std::vector<rule>& rules) {
  authorizer_result result;
  authorizer out;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    const rule& r = rules[i];
    auto error = [&](std::string what) { result.errors.push_back({i, std::move(what)}); };
    compiled_rule c;

    if (r.users.empty() && r.roles.empty() && r.subjects.empty())
      error("applies to nobody: give users (a name or \"*\"), subjects or roles");
    if (r.subscribe.empty() && r.send.empty()) error("grants nothing: give subscribe or send");
    for (std::size_t j = 0; j < r.users.size(); ++j) {
      if (r.users[j].empty()) {
        error(fmt::format("users[{}]: must not be empty", j));
      } else if (r.users[j] == "*") {
        c.any_user = true;
      } else if (r.users[j] == anonymous_name) {
        c.anonymous = true;
      } else {
        c.users.push_back(r.users[j]);
      }
    }
    for (std::size_t j = 0; j < r.subjects.size(); ++j) {
      if (r.subjects[j].empty()) {
        error(fmt::format("subjects[{}]: must not be empty", j));
      } else if (r.subjects[j] == "*") {
        c.any_subject = true;
      } else {
        c.subjects.push_back(r.subjects[j]);
      }
    }
    for (std::size_t j = 0; j < r.roles.size(); ++j) {
      if (r.roles[j].empty()) error(fmt::format("roles[{}]: must not be empty", j));
      c.roles.push_back(r.roles[j]);
    }

    auto compile = [&](const std::vector<std::string>& texts, std::string_view name,
                       std::vector<permissions::entry_ptr>& fixed,
                       std::vector<std::string>& templates) {
      for (std::size_t j = 0; j < texts.size(); ++j) {
        const std::string& text = texts[j];
        if (detail::has_unknown_placeholder(text)) {
          error(fmt::format("{}[{}]: unknown placeholder in '{}': only {{user}} is supported", name,
                            j, text));
          continue;
        }
        // Any placeholder-safe name leaves the pattern's segments and wildcards as they are,
        // so checking with one sample name checks them all.
        const auto sample = detail::expand_user(text, "x");
        std::string why;
        auto pattern = destination_pattern::parse(*sample, &why);
        if (!pattern) {
          error(fmt::format("{}[{}]: {}", name, j, why));
        } else if (*sample == text) {
          fixed.push_back(permissions::make_entry(std::move(*pattern)));
        } else {
          templates.push_back(text);
        }
      }
    };
    compile(r.subscribe, "subscribe", c.subscribe, c.subscribe_templates);
    compile(r.send, "send", c.send, c.send_templates);
    out.rules_.push_back(std::move(c));
  }
  if (result.errors.empty()) result.value = std::move(out);
  return result;
}

bool authorizer::applies(const compiled_rule& r, const principal& p) const {
  auto named = [&](const std::vector<std::string>& names) {
    return std::find(names.begin(), names.end(), p.user) != names.end();
  };
  switch (p.kind) {
    case principal_kind::anonymous:
      return r.anonymous;  // no roles, and "*" means authenticated
    case principal_kind::user:
      if (r.any_user || named(r.users)) return true;
      break;
    case principal_kind::token:
      if (r.any_user || r.any_subject || named(r.subjects)) return true;
      break;
  }
  return std::any_of(p.roles.begin(), p.roles.end(), [&](const std::string& role) {
    return std::find(r.roles.begin(), r.roles.end(), role) != r.roles.end();
  });
}

permissions authorizer::permissions_for(const principal& p) const {
  if (allow_all_) return permissions::all();
  permissions out = p.token_grants;
  for (const compiled_rule& r : rules_) {
    if (!applies(r, p)) continue;
    auto add = [&](action a, const std::vector<permissions::entry_ptr>& fixed,
                   const std::vector<std::string>& templates) {
      auto& list = out.list(a);
      list.insert(list.end(), fixed.begin(), fixed.end());
      for (const std::string& t : templates) {
        // nullopt: the name is not placeholder-safe, so this pattern grants it nothing.
        const auto expanded = detail::expand_user(t, p.user);
        if (!expanded) continue;
        // Cannot fail: create() parsed the same shape with a sample name.
        if (auto pattern = destination_pattern::parse(*expanded, nullptr))
          out.add(a, std::move(*pattern));
      }
    };
    add(action::subscribe, r.subscribe, r.subscribe_templates);
    add(action::send, r.send, r.send_templates);
  }
  return out;
}

bool authorizer::allows(const principal& p, action a, std::string_view destination) const {
  return permissions_for(p).allows(a, destination);
}

}  // namespace broker::auth
