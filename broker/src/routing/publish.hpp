#pragma once

#include "admin/admin_view.hpp"
#include "auth/principal.hpp"
#include "context.hpp"
#include "routing/message.hpp"
#include "stomp/frame.hpp"

#include <boost/container/small_vector.hpp>

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace broker {

// Publishing, shared by STOMP SENDs (session.cpp) and the admin API's POST /api/publish.

// "" when `d` is a valid destination, else what is wrong with it, naming it (printable and
// cut to 128 bytes): "destination '/x' must start with /topic/ or /queue/ followed by a name".
std::string destination_problem(std::string_view d, std::size_t max_bytes);

// The sender's headers that subscribers see: those the broker sets or that concern only the
// SEND are dropped, and a repeated header counts once, first value wins (STOMP 1.2,
// "Repeated Header Entries").
// Held inline for up to 16 headers: this runs for every SEND.
using header_views = boost::container::small_vector<stomp::header_view, 16>;
header_views passable_headers(std::span<const stomp::header_view> headers);

// A MESSAGE for a destination that is not journaled.
message_ptr make_live_message(std::string_view destination, std::string message_id,
                              std::span<const stomp::header_view> passed, std::string_view body);

// Delivers a non-journaled message: a topic's subscribers (on worker `w`'s thread), or a
// queue, which may be full.
enum class route_result { routed, queue_full };
route_result route(broker_context& ctx, std::size_t w, const message_ptr& m);

// POST /api/publish, on worker w's thread: as a SEND by `who` (nullptr: the admin, allowed
// everything). `done` runs once the message is stored (journaled) or routed.
void publish_from_admin(broker_context& ctx, worker& w, std::string destination,
                        std::vector<std::pair<std::string, std::string>> headers, std::string body,
                        const auth::principal* who,
                        std::function<void(admin::publish_result)> done);

}  // namespace broker
