#pragma once

#include "context.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace broker {

// Creates and runs a session over an accepted connection, on `w`'s thread. The socket must
// belong to w.io.
void start_tcp_session(broker_context& ctx, worker& w, boost::asio::ip::tcp::socket socket);
void start_websocket_session(broker_context& ctx, worker& w, boost::asio::ip::tcp::socket socket);

}  // namespace broker
