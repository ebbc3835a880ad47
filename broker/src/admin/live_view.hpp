#pragma once

#include "admin/admin_view.hpp"
#include "admin/stored_stats_cache.hpp"
#include "context.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <mutex>

namespace broker {

// The admin API's window into the running broker (admin::broker_view). Gathers from every
// worker by posting to it and waiting, so it must be called from the admin listener's thread,
// never from a worker. Rates come from a once-a-second sampler on worker 0.
class live_view final : public admin::broker_view {
 public:
  explicit live_view(broker_context& ctx);

  void start_sampler();  // from start(), after the workers run
  void stop_sampler();   // from stop(), before the workers are released
  void set_ready(bool r) { ready_ = r; }

  std::vector<admin::connection_info> connections() override;
  bool disconnect(std::uint64_t id, std::string reason) override;
  std::vector<admin::destination_info> destinations() override;
  std::optional<admin::destination_info> destination(std::string_view name) override;
  std::optional<admin::history_page> history(std::string_view name, std::uint64_t after,
                                             std::size_t limit,
                                             std::optional<std::size_t> last) override;
  std::optional<std::uint64_t> purge(std::string_view name) override;
  admin::broker_stats stats() override;
  const std::string& node_name() const override { return ctx_.node_name; }
  admin::metrics collect_metrics() override;
  bool ready() override { return ready_ && ctx_.publishing->store().ready(); }
  void publish(std::string destination, std::vector<std::pair<std::string, std::string>> headers,
               std::string body, const auth::principal* who,
               std::function<void(admin::publish_result)> done) override;
  std::optional<auth::principal> verify_token(std::string_view token) override;

 private:
  struct sample {
    std::chrono::steady_clock::time_point at;
    std::uint64_t in = 0, out = 0;
    std::map<std::string, std::uint64_t, std::less<>> published;  // per destination
  };

  sample take_sample() const;
  void on_sample_timer();
  // Rate per second between the oldest kept sample and the newest.
  double rate(std::uint64_t sample::*field) const;
  double destination_rate(std::string_view name) const;
  std::vector<admin::destination_info> gather_destinations();

  broker_context& ctx_;
  std::atomic<bool> ready_{false};
  boost::asio::steady_timer sampler_;
  mutable std::mutex samples_mutex_;
  std::deque<sample> samples_;  // the last ~10 s
  // Per-destination journal counts, at most one query a second (stored_stats_cache.hpp).
  admin::stored_stats_cache stored_;
};

}  // namespace broker
