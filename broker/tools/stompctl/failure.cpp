#include "stompctl/failure.hpp"

#include <utility>

namespace stompctl {

void fail(int status, std::string message) { throw failure{status, std::move(message)}; }

}  // namespace stompctl
