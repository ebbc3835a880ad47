#include "admin/listener.hpp"

#include "admin/http_session.hpp"
#include "broker/log.hpp"

#include <algorithm>
#include <utility>

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace broker::admin {

listener::listener(net::io_context& io, const config::admin_listener& settings, routes& api)
    : settings_(settings), api_(api), acceptor_(io) {}

void listener::open(const tcp::endpoint& endpoint) {
  try {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(net::socket_base::max_listen_connections);
    port_ = acceptor_.local_endpoint().port();
  } catch (const boost::system::system_error&) {
    beast::error_code ec;
    acceptor_.close(ec);
    throw;
  }
}

void listener::run() { do_accept(); }

void listener::close() {
  beast::error_code ec;
  acceptor_.close(ec);
  for (auto& w : sessions_)
    if (auto s = w.lock()) s->close();
  sessions_.clear();
}

void listener::do_accept() {
  acceptor_.async_accept(
      [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void listener::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    log_error("accept failed transport=admin: {}", ec.message());
  } else {
    std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
    if (sessions_.size() >= settings_.max_connections) {
      log_warn("connection refused transport=admin: {} admin connections open", sessions_.size());
      beast::error_code e;
      socket.close(e);
    } else {
      auto s = std::make_shared<http_session>(settings_, api_, std::move(socket));
      sessions_.push_back(s);
      s->run();
    }
  }
  do_accept();
}

}  // namespace broker::admin
