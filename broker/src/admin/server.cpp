#include "admin/server.hpp"

#include "admin/listener.hpp"
#include "admin/routes.hpp"
#include "broker/log.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace broker::admin {

struct server::impl {
  impl(const config::admin_listener& s, broker_view& view)
      : settings(s), api(settings, view, io), accept(io, settings, api) {}

  const config::admin_listener settings;
  std::thread thread;
  bool started = false;
  bool stopped = false;
  // The io_context before what uses it, so it is destroyed last: the routes and the listener
  // hold sessions, whose sockets must be closed while it exists; the sessions that handlers
  // still queued in it hold are destroyed with it.
  net::io_context io{1};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  routes api;
  listener accept;
};

server::server(const config::admin_listener& settings, broker_view& view)
    : impl_(std::make_unique<impl>(settings, view)) {}

server::~server() { stop(); }

void server::start() {
  auto& m = *impl_;
  if (m.started) return;
  const auto& s = m.settings;
  std::string host = s.host == "localhost" ? "127.0.0.1" : s.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    tcp::endpoint ep(net::ip::make_address(host), s.port);
    m.accept.open(ep);
    // The server logs the "listening" line with the bound port; only say what it can't.
    if (s.token.empty() && !ep.address().is_loopback())
      log_warn(
          "admin listener address={} has no admin.token: anyone who can reach it can "
          "administer the broker",
          s.host);
    else if (s.token.empty())
      log_info("admin listener has no admin.token: /api/ needs no authentication");
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error(
        fmt::format("admin listener {}:{}: {}", s.host, s.port, e.code().message()));
  }
  m.started = true;
  m.accept.run();
  m.guard.emplace(net::make_work_guard(m.io));
  m.thread = std::thread([&m] {
    try {
      m.io.run();
    } catch (const std::exception& e) {
      log_error("admin listener stopped by an exception: {}", e.what());
    }
  });
}

std::uint16_t server::port() const { return impl_->accept.port(); }

void server::stop() {
  auto& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  m.api.close_publishes();
  net::post(m.io, [&m] {
    m.accept.close();
    m.api.drop_pending();
  });
  m.guard.reset();
  m.thread.join();
  // A request read just before the close may have registered a publish since; its session
  // goes here, while the io_context still exists.
  m.api.drop_pending();
}

}  // namespace broker::admin
