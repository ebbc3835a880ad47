#pragma once

#include "context.hpp"
#include "net/connection_limiter.hpp"

#include <boost/asio/ip/tcp.hpp>

namespace broker {

// Creates and runs a session over an accepted connection, on `w`'s thread. The socket must
// belong to w.io. With `tls`, the TLS handshake (ctx.tls) comes first.
void start_tcp_session(broker_context& ctx, worker& w, boost::asio::ip::tcp::socket socket,
                       connection_limiter::slot slot, bool tls);
void start_websocket_session(broker_context& ctx, worker& w, boost::asio::ip::tcp::socket socket,
                             connection_limiter::slot slot, bool tls);

// Turns away a connection over a limit: a STOMP ERROR (or an HTTP 503 for WebSocket), then
// close. Best effort and never blocking; a TLS listener just closes.
void refuse_connection(boost::asio::ip::tcp::socket socket, bool websocket, bool tls,
                       std::string_view why);

}  // namespace broker
