#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct redisAsyncContext;  // hiredis, known only to connection.cpp

// A connection to one Redis server for the Redis engine: hiredis's asynchronous API driven
// by one worker's io_context. Nothing of hiredis appears outside connection.cpp.
namespace broker::redis {

enum class errc {
  not_connected = 1,   // a command before connect() succeeded, or after the connection ended
  connect_failed,      // refused, unreachable, or the address could not be used
  timed_out,           // connect() took longer than its timeout
  connection_lost,     // the server closed the connection, or it broke, with commands pending
  closed,              // close() was called with commands pending
  server_error,        // Redis answered a command with an error reply
  bad_reply,           // a reply of a shape the caller did not expect
  already_subscribed,  // subscribe() to a channel this connection has (or is leaving)
  weaker_durability,   // (the engine's) Redis persists less than journal.durability asks
};
const boost::system::error_category& category() noexcept;
inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

// One reply, copied out of hiredis's own (which hiredis frees once its callback returns).
struct reply {
  enum class type { nil, integer, string, status, error, array };
  type kind = type::nil;
  long long integer = 0;
  std::string str;              // string, status and error replies; binary-safe
  std::vector<reply> elements;  // array replies

  bool is_error() const noexcept { return kind == type::error; }
};

class connection;

// FUNCTION LOAD REPLACE of a Lua library (Redis 7 functions); `done` gets the error, and
// Redis's words for it.
void load_functions(connection& c, std::string_view library,
                    std::function<void(boost::system::error_code, std::string)> done);

// A command's failure, the transport's (`ec`) or Redis's error reply, put into the caller's
// result (its `ec` and `error`); `function` names what was called ("stompd_append: ERR
// Function not found"). False when the command did not fail.
template <typename Result>
bool failed(boost::system::error_code ec, const reply& r, std::string_view function, Result& out) {
  if (ec) {
    out.ec = ec;
    return true;
  }
  if (!r.is_error()) return false;
  out.ec = make_error_code(errc::server_error);
  out.error = std::string(function) + ": " + r.str;
  return true;
}

// Commands are pipelined: each is written as soon as the socket takes it, and replies come
// back in the order the commands were made. Every handler runs on the io_context (posted, never
// from inside hiredis), once. Not thread-safe: use it on its io_context's thread only.
class connection : public std::enable_shared_from_this<connection> {
 public:
  using reply_handler = std::function<void(boost::system::error_code, reply)>;
  using done_handler = std::function<void(boost::system::error_code)>;
  using message_handler = std::function<void(std::string payload)>;

  static std::shared_ptr<connection> create(boost::asio::io_context& io) {
    return std::shared_ptr<connection>(new connection(io));
  }
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Connects to host:port (an IP address; hiredis resolves nothing asynchronously). `done`
  // gets connect_failed, timed_out or success. Once only.
  void connect(const std::string& host, std::uint16_t port, std::chrono::milliseconds timeout,
               done_handler done);
  // Sends one command, its arguments binary-safe. The handler gets the reply (a Redis error
  // reply is a reply, with kind error), or not_connected / connection_lost / closed. A null
  // handler: the reply is not wanted.
  void command(const std::vector<std::string>& args, reply_handler handler);
  // Pub/sub (a connection that subscribes does nothing else, as Redis requires): every
  // message published on `channel` goes to `on_message`, in order, until unsubscribe() or
  // the end of the connection; `subscribed` gets success once Redis confirmed, or the error.
  // A channel is subscribed once at a time: again before its unsubscribe is confirmed gets
  // already_subscribed (hiredis 0.14 would drop the new subscription with the old one).
  void subscribe(const std::string& channel, message_handler on_message, done_handler subscribed);
  void unsubscribe(const std::string& channel);
  bool subscribed(const std::string& channel) const { return channels_.contains(channel); }

  // Called once when the connection ends by itself (the server went away), not after close().
  void on_lost(done_handler handler) { on_lost_ = std::move(handler); }
  // Ends the connection now: pending commands get `closed`.
  void close();

  bool connected() const noexcept { return connected_; }
  std::size_t pending() const noexcept { return pending_; }
  // Replies received so far: with pending(), tells a server that stopped answering.
  std::uint64_t replies() const noexcept { return replies_; }
  // hiredis's words for why the connection could not be made or ended ("Connection refused").
  const std::string& error_text() const noexcept { return error_text_; }

 private:
  explicit connection(boost::asio::io_context& io);

  struct hooks;  // hiredis's callbacks, in connection.cpp
  struct subscription {
    std::string channel;
    message_handler on_message;
    done_handler subscribed;  // until Redis confirms
    bool leaving = false;     // UNSUBSCRIBE sent, not yet confirmed
  };
  // One way of the socket: whether hiredis wants to know it is ready, and whether an
  // async_wait for it is in flight.
  struct direction {
    bool wanted = false;
    bool waiting = false;
  };
  void wait(direction& d, boost::asio::posix::descriptor_base::wait_type type,
            void (*handle)(redisAsyncContext*));
  void wait_readable();
  void wait_writable();
  void finish_connect(boost::system::error_code ec, std::string why);
  void release_descriptor();
  void deliver(reply_handler handler, boost::system::error_code ec, reply r);

  boost::asio::io_context& io_;
  redisAsyncContext* ac_ = nullptr;  // null before connect() and once hiredis let go of it
  std::optional<boost::asio::posix::stream_descriptor> socket_;  // watches hiredis's fd
  boost::asio::steady_timer connect_timer_;
  done_handler connect_done_;
  done_handler on_lost_;
  direction read_, write_;
  bool connected_ = false;
  bool closing_ = false;  // close() or a failed connect: the end is ours, not "lost"
  std::size_t pending_ = 0;
  std::uint64_t replies_ = 0;
  std::string error_text_;
  // What hiredis's subscription callbacks point at; erased once Redis confirmed the
  // UNSUBSCRIBE or the connection ended.
  std::unordered_map<std::string, std::unique_ptr<subscription>> channels_;
};

}  // namespace broker::redis

template <>
struct boost::system::is_error_code_enum<broker::redis::errc> : std::true_type {};
