#include "engine/redis/connection.hpp"

#include <boost/asio/post.hpp>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <utility>

// hiredis does the protocol and keeps the socket; Asio tells it when the socket is readable
// or writable. hiredis asks for that through its ev hooks (addRead, addWrite, ...), which
// only set flags and start an async_wait on a stream_descriptor watching hiredis's fd. That
// descriptor is released, never closed, when hiredis lets go of the connection (its cleanup
// hook), because hiredis closes the fd itself.

namespace net = boost::asio;

namespace broker::redis {

namespace {

class redis_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "redis"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::not_connected:
        return "not connected to Redis";
      case errc::connect_failed:
        return "cannot connect to Redis";
      case errc::timed_out:
        return "connecting to Redis timed out";
      case errc::connection_lost:
        return "the connection to Redis was lost";
      case errc::closed:
        return "the connection to Redis was closed";
      case errc::server_error:
        return "Redis answered with an error";
      case errc::bad_reply:
        return "Redis answered with an unexpected reply";
      case errc::already_subscribed:
        return "already subscribed to that channel";
      case errc::weaker_durability:
        return "Redis does not persist messages as journal.durability requires";
    }
    return "unknown Redis error";
  }
};

reply copy_reply(const redisReply& r) {
  reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.kind = reply::type::string;
      break;
    case REDIS_REPLY_STATUS:
      out.kind = reply::type::status;
      break;
    case REDIS_REPLY_ERROR:
      out.kind = reply::type::error;
      break;
    case REDIS_REPLY_INTEGER:
      out.kind = reply::type::integer;
      out.integer = r.integer;
      return out;
    case REDIS_REPLY_ARRAY:
      out.kind = reply::type::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i)
        out.elements.push_back(copy_reply(*r.element[i]));
      return out;
    default:  // REDIS_REPLY_NIL
      return out;
  }
  out.str.assign(r.str, r.len);
  return out;
}

}  // namespace

const boost::system::error_category& category() noexcept {
  static const redis_category c;
  return c;
}

// hiredis's C callbacks: `data` (of the context, or of its ev hooks) is the connection.
struct connection::hooks {
  static connection& of(const redisAsyncContext* ac) { return *static_cast<connection*>(ac->data); }
  static connection& of(void* data) { return *static_cast<connection*>(data); }

  static void add_read(void* data) {
    of(data).read_.wanted = true;
    of(data).wait_readable();
  }
  static void del_read(void* data) { of(data).read_.wanted = false; }
  static void add_write(void* data) {
    of(data).write_.wanted = true;
    of(data).wait_writable();
  }
  static void del_write(void* data) { of(data).write_.wanted = false; }
  // hiredis is done with the connection and will close the fd (and free the context).
  static void cleanup(void* data) {
    auto& c = of(data);
    c.release_descriptor();
    c.ac_ = nullptr;
    c.connected_ = false;
  }

  static void on_connect(const redisAsyncContext* ac, int status) {
    if (status == REDIS_OK) return of(ac).finish_connect({}, {});
    // hiredis disconnects and frees the context once this returns.
    of(ac).finish_connect(errc::connect_failed, ac->errstr ? ac->errstr : "");
  }
  static void on_disconnect(const redisAsyncContext* ac, int /*status*/) {
    auto& c = of(ac);
    c.connected_ = false;
    if (ac->errstr != nullptr && ac->err != 0) c.error_text_ = ac->errstr;
    if (c.closing_ || !c.on_lost_) return;
    net::post(c.io_, [lost = std::exchange(c.on_lost_, nullptr)] { lost(errc::connection_lost); });
  }
  // hiredis passes no reply for commands still pending when the connection ends.
  static void on_reply(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<reply_handler> handler(static_cast<reply_handler*>(privdata));
    auto& c = of(ac);
    --c.pending_;
    ++c.replies_;
    if (r == nullptr)
      return c.deliver(std::move(*handler), c.closing_ ? errc::closed : errc::connection_lost, {});
    c.deliver(std::move(*handler), {}, copy_reply(*static_cast<redisReply*>(r)));
  }
  // Every reply about one subscribed channel: ["subscribe", ch, n], ["message", ch, payload],
  // ["unsubscribe", ch, n]; none when the connection ends.
  static void on_subscription(redisAsyncContext* ac, void* r, void* privdata) {
    auto& c = of(ac);
    auto* sub = static_cast<subscription*>(privdata);
    auto* rep = static_cast<redisReply*>(r);
    auto forget = [&] {
      if (sub->subscribed)
        net::post(c.io_, [done = std::exchange(sub->subscribed, nullptr),
                          ec = c.closing_ ? errc::closed : errc::connection_lost] { done(ec); });
      c.channels_.erase(sub->channel);  // frees *sub
    };
    if (rep == nullptr) return forget();
    if (rep->type == REDIS_REPLY_ERROR) {  // refused (e.g. by an ACL)
      if (sub->subscribed) {
        net::post(c.io_,
                  [done = std::exchange(sub->subscribed, nullptr)] { done(errc::server_error); });
      }
      return;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) return;
    const std::string_view kind(rep->element[0]->str, rep->element[0]->len);
    if (kind == "message") {
      if (sub->leaving) return;  // unsubscribe() was called: no more
      const auto& payload = *rep->element[2];
      net::post(c.io_, [on = sub->on_message, p = std::string(payload.str, payload.len)]() mutable {
        on(std::move(p));
      });
    } else if (kind == "subscribe") {
      if (sub->subscribed)
        net::post(c.io_, [done = std::exchange(sub->subscribed, nullptr)] { done({}); });
    } else if (kind == "unsubscribe") {
      forget();
    }
  }
};

connection::connection(net::io_context& io) : io_(io), connect_timer_(io) {}

connection::~connection() {
  closing_ = true;
  if (ac_ != nullptr) redisAsyncFree(ac_);  // pending handlers get `closed`, posted
}

void connection::connect(const std::string& host, std::uint16_t port,
                         std::chrono::milliseconds timeout, done_handler done) {
  connect_done_ = std::move(done);
  ac_ = redisAsyncConnect(host.c_str(), port);
  if (ac_ == nullptr) return finish_connect(errc::connect_failed, "out of memory");
  if (ac_->err != 0) {
    std::string why = ac_->errstr;
    redisAsyncFree(std::exchange(ac_, nullptr));  // nothing is attached yet
    return finish_connect(errc::connect_failed, why);
  }
  ac_->data = this;
  ac_->ev.data = this;
  ac_->ev.addRead = &hooks::add_read;
  ac_->ev.delRead = &hooks::del_read;
  ac_->ev.addWrite = &hooks::add_write;
  ac_->ev.delWrite = &hooks::del_write;
  ac_->ev.cleanup = &hooks::cleanup;
  redisAsyncSetConnectCallback(ac_, &hooks::on_connect);
  redisAsyncSetDisconnectCallback(ac_, &hooks::on_disconnect);
  socket_.emplace(io_, ac_->c.fd);
  // The non-blocking connect(2) is done when the socket turns writable.
  write_.wanted = true;
  wait_writable();
  connect_timer_.expires_after(timeout);
  connect_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->connected_ || self->ac_ == nullptr) return;
    self->finish_connect(errc::timed_out, {});
    self->closing_ = true;
    redisAsyncFree(self->ac_);
  });
}

void connection::finish_connect(boost::system::error_code ec, std::string why) {
  connect_timer_.cancel();
  if (ec) error_text_ = why.empty() ? ec.message() : std::move(why);
  connected_ = !ec;
  if (ec) closing_ = true;  // the end that follows is ours to report, not "lost"
  if (!connect_done_) return;
  net::post(io_, [done = std::exchange(connect_done_, nullptr), ec] { done(ec); });
}

void connection::command(const std::vector<std::string>& args, reply_handler handler) {
  if (ac_ == nullptr || !connected_) return deliver(std::move(handler), errc::not_connected, {});
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto owned = std::make_unique<reply_handler>(std::move(handler));
  if (redisAsyncCommandArgv(ac_, &hooks::on_reply, owned.get(), static_cast<int>(args.size()),
                            argv.data(), lengths.data()) != REDIS_OK)
    return deliver(std::move(*owned), errc::not_connected, {});
  owned.release();  // hiredis holds it until hooks::on_reply
  ++pending_;
}

void connection::subscribe(const std::string& channel, message_handler on_message,
                           done_handler subscribed) {
  auto fail = [&](errc e) { net::post(io_, [done = std::move(subscribed), e] { done(e); }); };
  if (ac_ == nullptr || !connected_) return fail(errc::not_connected);
  if (channels_.contains(channel)) return fail(errc::already_subscribed);
  auto& sub = channels_[channel];
  sub = std::make_unique<subscription>(
      subscription{channel, std::move(on_message), std::move(subscribed), false});
  const char* argv[] = {"SUBSCRIBE", channel.data()};
  const std::size_t lengths[] = {9, channel.size()};
  if (redisAsyncCommandArgv(ac_, &hooks::on_subscription, sub.get(), 2, argv, lengths) !=
      REDIS_OK) {
    auto done = std::move(sub->subscribed);
    channels_.erase(channel);
    net::post(io_, [done = std::move(done)] { done(errc::not_connected); });
  }
}

void connection::unsubscribe(const std::string& channel) {
  auto it = channels_.find(channel);
  if (it == channels_.end() || it->second->leaving || ac_ == nullptr) return;
  it->second->leaving = true;
  const char* argv[] = {"UNSUBSCRIBE", channel.data()};
  const std::size_t lengths[] = {11, channel.size()};
  // The reply comes to the channel's own callback (hooks::on_subscription), not to this one.
  redisAsyncCommandArgv(ac_, nullptr, nullptr, 2, argv, lengths);
}

void connection::close() {
  closing_ = true;
  connect_timer_.cancel();
  if (connect_done_) finish_connect(errc::closed, {});
  if (ac_ != nullptr) redisAsyncFree(ac_);  // calls hooks::cleanup: ac_ is null after it
}

// Waits until the socket is ready one way, lets hiredis handle it, and waits again while
// hiredis still wants it (`d` is a member of *self, alive as long as the handler).
void connection::wait(direction& d, net::posix::descriptor_base::wait_type type,
                      void (*handle)(redisAsyncContext*)) {
  if (d.waiting || !d.wanted || !socket_) return;
  d.waiting = true;
  socket_->async_wait(type,
                      [self = shared_from_this(), &d, type, handle](boost::system::error_code ec) {
                        d.waiting = false;
                        if (ec || self->ac_ == nullptr || !d.wanted) return;
                        handle(self->ac_);
                        self->wait(d, type, handle);
                      });
}

void connection::wait_readable() {
  wait(read_, net::posix::descriptor_base::wait_read, &redisAsyncHandleRead);
}
void connection::wait_writable() {
  wait(write_, net::posix::descriptor_base::wait_write, &redisAsyncHandleWrite);
}

void connection::release_descriptor() {
  if (!socket_) return;
  socket_->release();  // cancels the waits; hiredis closes the fd
  socket_.reset();
}

void connection::deliver(reply_handler handler, boost::system::error_code ec, reply r) {
  if (!handler) return;
  net::post(io_, [handler = std::move(handler), ec, r = std::move(r)]() mutable {
    handler(ec, std::move(r));
  });
}

void load_functions(connection& c, std::string_view library,
                    std::function<void(boost::system::error_code, std::string)> done) {
  c.command({"FUNCTION", "LOAD", "REPLACE", std::string(library)},
            [done = std::move(done)](boost::system::error_code ec, reply r) {
              if (!ec && r.is_error()) return done(errc::server_error, r.str);
              done(ec, {});
            });
}

}  // namespace broker::redis
