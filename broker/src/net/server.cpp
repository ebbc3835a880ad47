#include "broker/server.hpp"

#include "admin/live_view.hpp"
#include "admin/server.hpp"
#include "broker/log.hpp"
#include "context.hpp"
#include "engine/local_engine.hpp"
#include "engine/redis/redis_engine.hpp"
#include "net/transport.hpp"
#include "session/session.hpp"

#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace broker {

namespace {

// How long stop() lets sessions flush and close before it stops the event loops anyway.
constexpr std::chrono::seconds shutdown_deadline{5};

// Every connection is a descriptor; the usual soft limit of 1024 would cap the broker far
// below what it can serve. Raise it to the hard limit, as nats-server and redis do.
void raise_open_file_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == r.rlim_max) return;
  r.rlim_cur = r.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &r) != 0)
    log_warn("could not raise the open-file limit: {}", std::strerror(errno));
}

// TLS 1.2 and newer only; the certificate chain and key come from config. A file that can't be
// read stops startup with its name.
std::unique_ptr<net::ssl::context> make_tls_context(const config::tls_settings& t) {
  auto c = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
  c->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                 net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                 net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  boost::system::error_code ec;
  c->use_certificate_chain_file(t.cert_file.string(), ec);
  if (ec)
    throw std::runtime_error(
        fmt::format("tls.cert_file {}: {}", t.cert_file.string(), ec.message()));
  c->use_private_key_file(t.key_file.string(), net::ssl::context::pem, ec);
  if (ec)
    throw std::runtime_error(fmt::format("tls.key_file {}: {}", t.key_file.string(), ec.message()));
  return c;
}

std::size_t worker_count(const config& c) {
  std::size_t n = c.threads != 0 ? c.threads : std::max(1u, std::thread::hardware_concurrency());
  return std::min(n, router::max_workers);
}

}  // namespace

broker_context::broker_context(config c)
    : settings(std::move(c)),
      held(settings.limits.max_held_bytes_total),
      server_header(fmt::format("{}/{}", settings.server_name, STOMPD_VERSION)),
      topics(
          worker_count(settings),
          [this](std::size_t w, std::function<void()> task) { workers.post(w, std::move(task)); }),
      queues(settings.limits.max_queue_messages, settings.limits.max_queues),
      connections(settings.limits.max_connections, settings.limits.max_connections_per_address),
      workers(worker_count(settings)) {}

// A failing accept is retried after a back-off, doubling from the first delay up to the
// last and reset by the next success. Out of descriptors (EMFILE, ENFILE), accept fails at
// once for as long as the backlog holds a connection: re-armed at once, it would spin a core
// and flood the log while the broker still has connections to serve.
constexpr std::chrono::milliseconds first_accept_backoff{10};
constexpr std::chrono::milliseconds max_accept_backoff{1000};

// A listening socket handing each connection to the next worker, round-robin. Lives on
// worker 0's thread.
struct listener {
  using starter = void (*)(broker_context&, worker&, tcp::socket, connection_limiter::slot, bool);

  listener(broker_context& c, std::string_view n, starter s, bool is_websocket, bool use_tls)
      : ctx(c),
        name(n),
        start(s),
        websocket(is_websocket),
        tls(use_tls),
        acceptor(c.workers[0]->io),
        backoff_timer(c.workers[0]->io) {}

  void open(const config::listener& where) {
    auto address = net::ip::make_address(where.host == "localhost" ? "127.0.0.1" : where.host);
    tcp::endpoint ep(address, where.port);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen(net::socket_base::max_listen_connections);
    port = acceptor.local_endpoint().port();
  }

  void do_accept() {
    auto& target = *ctx.workers[next++ % ctx.workers.size()];
    acceptor.async_accept(
        target.io, [this, &target](boost::system::error_code ec, tcp::socket socket) {
          if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
          if (ec) return back_off(ec);
          if (failures != 0) {
            log_info("accept recovered transport={} after failures={}", name, failures);
            failures = 0;
            backoff = first_accept_backoff;
          }
          boost::system::error_code e;
          auto address = socket.remote_endpoint(e).address().to_string();
          std::string why;
          auto slot = ctx.connections.acquire(address, &why);
          if (!slot) {
            log_warn("connection refused transport={} peer={}: {}", name, address, why);
            refuse_connection(std::move(socket), websocket, tls, why);
          } else {
            net::post(target.io,
                      [this, &target, s = std::move(socket), sl = std::move(*slot)]() mutable {
                        start(ctx, target, std::move(s), std::move(sl), tls);
                      });
          }
          do_accept();
        });
  }

  // Out of descriptors, most likely: the connections we have are still served, and the
  // next accept waits. One log line per episode; the recovery line gives the count.
  void back_off(boost::system::error_code ec) {
    if (failures++ == 0)
      log_error("accept failed transport={}: {}; retrying with back-off up to {} ms", name,
                ec.message(), max_accept_backoff.count());
    backoff_timer.expires_after(backoff);
    backoff = std::min(backoff * 2, max_accept_backoff);
    backoff_timer.async_wait([this](boost::system::error_code e) {
      if (!e && acceptor.is_open()) do_accept();
    });
  }

  // On worker 0's thread.
  void close() {
    boost::system::error_code ec;
    acceptor.close(ec);
    backoff_timer.cancel();
  }

  broker_context& ctx;
  std::string_view name;
  starter start;
  bool websocket;
  bool tls;
  tcp::acceptor acceptor;
  std::uint16_t port = 0;
  std::size_t next = 0;
  net::steady_timer backoff_timer;
  std::chrono::milliseconds backoff = first_accept_backoff;  // the next failure's wait
  std::uint64_t failures = 0;                                // in this back-off episode
};

struct server::impl {
  explicit impl(config c) : ctx(std::move(c)) {}

  broker_context ctx;
  live_view view{ctx};
  std::optional<admin::server> admin;
  std::optional<listener> tcp_listener;
  std::optional<listener> ws_listener;
  std::vector<std::thread> threads;
  std::vector<std::optional<net::executor_work_guard<net::io_context::executor_type>>> guards;
  bool started = false;
  bool stopped = false;

  std::mutex done_mutex;
  std::condition_variable done_cv;
  std::size_t running = 0;
};

server::server(config settings) : impl_(std::make_unique<impl>(std::move(settings))) {}

server::~server() { stop(); }

void server::start() {
  auto& m = *impl_;
  if (m.started) return;
  const auto& cfg = m.ctx.settings;
  set_log_level(cfg.log_level);
  raise_open_file_limit();
  m.ctx.security = std::make_unique<security>(cfg.auth);
  if (cfg.auth.anonymous)
    log_warn("auth.anonymous is on: anyone may connect (the development default)");
  // A journal that can't be opened (corrupt, newer schema, unwritable) stops startup here,
  // with the reason: never a silent fresh start.
  std::unique_ptr<engine> store;
  if (cfg.cluster.enabled())
    store =
        std::make_unique<redis_engine>(cfg, m.ctx.workers, m.ctx.topics, m.ctx.queues, m.ctx.held);
  else
    store = std::make_unique<local_engine>(cfg, m.ctx.workers, m.ctx.topics, m.ctx.queues,
                                           m.ctx.held, m.ctx.metrics);
  m.ctx.publishing = std::make_unique<publisher>(cfg, m.ctx.workers, m.ctx.held, std::move(store));
  if (cfg.cluster.enabled()) {
    std::string addresses;
    for (const auto& a : cfg.cluster.redis.addresses)
      addresses += fmt::format("{}{}:{}", addresses.empty() ? "" : ",", a.host, a.port);
    log_info("journal in redis addresses={} key_prefix={}", addresses,
             cfg.cluster.redis.key_prefix);
  } else if (cfg.journal.enabled) {
    log_info("journal path={} durability={}", (cfg.data_dir / "stompd.db").string(),
             cfg.journal.durability == config::journal_settings::durability_mode::power
                 ? "power"
                 : "process");
  }
  // Bind everything before any thread runs, so a taken port fails start() cleanly.
  if ((cfg.tcp.enabled && cfg.tcp.tls) || (cfg.websocket.enabled && cfg.websocket.tls))
    m.ctx.tls = make_tls_context(cfg.tls);
  if (cfg.tcp.enabled) {
    m.tcp_listener.emplace(m.ctx, cfg.tcp.tls ? "tcp+tls" : "tcp", &start_tcp_session, false,
                           cfg.tcp.tls);
    m.tcp_listener->open(cfg.tcp);
  }
  if (cfg.websocket.enabled) {
    m.ws_listener.emplace(m.ctx, cfg.websocket.tls ? "websocket+tls" : "websocket",
                          &start_websocket_session, true, cfg.websocket.tls);
    m.ws_listener->open(cfg.websocket);
  }
  m.started = true;
  // Before anything that reads it runs: the workers and the admin listener start below.
  m.ctx.node_name = cfg.node_name;
  if (m.ctx.node_name.empty()) {
    const auto port = m.tcp_listener ? m.tcp_listener->port
                                     : (m.ws_listener ? m.ws_listener->port : std::uint16_t{0});
    m.ctx.node_name = fmt::format("{}:{}", boost::asio::ip::host_name(), port);
  }
  if (m.tcp_listener) {
    log_info("listening transport={} address={}:{}", m.tcp_listener->name, cfg.tcp.host,
             m.tcp_listener->port);
    m.tcp_listener->do_accept();
  }
  if (m.ws_listener) {
    log_info("listening transport={} address={}:{} path={}", m.ws_listener->name,
             cfg.websocket.host, m.ws_listener->port, cfg.websocket.path);
    m.ws_listener->do_accept();
  }
  m.running = m.ctx.workers.size();
  for (auto& w : m.ctx.workers) {
    m.guards.emplace_back(net::make_work_guard(w->io));
    m.threads.emplace_back([&m, &w = *w] {
      try {
        run_event_loop(w, m.ctx.topics);
      } catch (const std::exception& e) {
        log_error("worker stopped by an exception: {}", e.what());
      }
      std::lock_guard lock(m.done_mutex);
      --m.running;
      m.done_cv.notify_all();
    });
  }
  m.view.start_sampler();
  if (cfg.admin.enabled) {
    m.admin.emplace(cfg.admin, m.view);
    m.admin->start();
    log_info("listening transport=admin address={}:{}", cfg.admin.host, m.admin->port());
  }
  m.view.set_ready(true);
  log_info("started version={} threads={} node={}", STOMPD_VERSION, m.ctx.workers.size(),
           m.ctx.node_name);
}

// The order is what keeps shutdown free of use-after-free (broker_context says what each
// member may still touch): 1. stop accepting; 2. stop the producers that post to the event
// loops: the passcode verifier, and the journal is drained; 3. close the sessions and let the
// event loops end; 4. stop the journal writer; then ~impl destroys the rest.
void server::stop() {
  auto& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopped = true;
  log_info("stopping: closing listeners and sessions");
  // 1. Nothing new comes in.
  m.view.set_ready(false);
  if (m.admin) m.admin->stop();
  m.view.stop_sampler();
  // Listeners live on worker 0; close them there.
  net::post(m.ctx.workers[0]->io, [&m] {
    if (m.tcp_listener) m.tcp_listener->close();
    if (m.ws_listener) m.ws_listener->close();
  });
  // 2. The check running finishes and posts its result to a loop that still runs; the checks
  // still queued are abandoned (their connections are closed below, refused in effect) and
  // freed with `security`, after the loops have ended. A CONNECT arriving until then is
  // queued on the stopped pool the same way.
  m.ctx.security->verifier.stop();
  m.ctx.security->verifier.join();
  {
    // Let SENDs already handed to the engine be stored first: their RECEIPTs are posted to
    // the sessions ahead of the closes below.
    auto flushed = std::make_shared<std::promise<void>>();
    m.ctx.publishing->store().drain([flushed] { flushed->set_value(); });
    flushed->get_future().wait_for(shutdown_deadline);
  }
  // 3. Each close is bounded (session::close_linger), and so is the wait for all of them.
  for (auto& w : m.ctx.workers) {
    net::post(w->io, [&w = *w] {
      // close() unregisters the session from this set: iterate over a copy.
      std::vector<session*> all(w.sessions.begin(), w.sessions.end());
      for (auto* s : all) s->close(close_reason::shutdown, true);
    });
  }
  // Without their guards the loops return once the sessions' last operations finish.
  for (auto& g : m.guards) g.reset();
  {
    std::unique_lock lock(m.done_mutex);
    if (!m.done_cv.wait_for(lock, shutdown_deadline, [&] { return m.running == 0; })) {
      log_warn("stopping: sessions still open after {} s, closing them", shutdown_deadline.count());
      for (auto& w : m.ctx.workers) w->io.stop();
    }
  }
  for (auto& t : m.threads) t.join();
  // 4. The writer commits what it still holds and stops; the completions it posts go to
  // loops that no longer run and are freed with them.
  m.ctx.publishing.reset();
  log_info("stopped");
}

std::uint16_t server::tcp_port() const noexcept {
  return impl_->tcp_listener ? impl_->tcp_listener->port : 0;
}

std::uint16_t server::websocket_port() const noexcept {
  return impl_->ws_listener ? impl_->ws_listener->port : 0;
}

int server::run_until_signalled() {
  // The handler is in place before start() announces the ports: a SIGTERM sent as soon as
  // a supervisor sees them must stop the broker cleanly, not kill it.
  net::io_context signals_io(1);
  net::signal_set signals(signals_io, SIGINT, SIGTERM);
  signals.async_wait([](boost::system::error_code ec, int signo) {
    if (!ec) log_info("received signal={}", signo == SIGINT ? "SIGINT" : "SIGTERM");
  });
  start();
  signals_io.run();
  stop();
  return 0;
}

}  // namespace broker
