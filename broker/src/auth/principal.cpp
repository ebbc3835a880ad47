#include "auth/principal.hpp"

#include <utility>

namespace broker::auth {

permissions permissions::all() {
  permissions p;
  p.all_ = true;
  return p;
}

permissions::entry_ptr permissions::make_entry(destination_pattern pattern) {
  const std::string& text = pattern.text();
  const std::size_t star = text.find('*');
  // destination_pattern only accepts '*' as a whole segment, so the first '*' starts the
  // first wildcard segment. The tokens before it are literal and must match the destination's
  // first tokens exactly, separators included, so the destination starts with their text. The
  // separator before the wildcard is left out: "**" may match no segment at all.
  const bool literal = star == std::string::npos;
  const std::size_t prefix = literal ? text.size() : (star == 0 ? 0 : star - 1);
  return std::make_shared<const entry>(entry{std::move(pattern), prefix, literal});
}

bool permissions::allows(action a, std::string_view destination) const {
  if (all_) return true;
  for (const auto& e : list(a)) {
    const std::string& text = e->pattern.text();
    if (e->literal) {
      if (destination == text) return true;
    } else if (destination.starts_with(std::string_view(text).substr(0, e->prefix_bytes)) &&
               e->pattern.matches(destination)) {
      return true;
    }
  }
  return false;
}

void permissions::add(action a, destination_pattern pattern) {
  list(a).push_back(make_entry(std::move(pattern)));
}

void permissions::merge(const permissions& other) {
  all_ = all_ || other.all_;
  subscribe_.insert(subscribe_.end(), other.subscribe_.begin(), other.subscribe_.end());
  send_.insert(send_.end(), other.send_.begin(), other.send_.end());
}

std::vector<std::string> permissions::patterns(action a) const {
  std::vector<std::string> out;
  if (all_) out.push_back("**");
  for (const auto& e : list(a)) out.push_back(e->pattern.text());
  return out;
}

}  // namespace broker::auth
