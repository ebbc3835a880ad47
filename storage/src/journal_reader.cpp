#include "journal_impl.hpp"
#include "storage/header_codec.hpp"

// The reader threads: replays and stats, each in one read transaction.

namespace storage {

using detail::from_sql;
using detail::to_sql;

void journal::impl::reader_main(reader& rd) {
  for (;;) {
    read_task task;
    {
      std::unique_lock lk(read_mu_);
      read_cv_.wait(lk, [this] { return !reads_.empty() || readers_stopping_; });
      if (reads_.empty()) return;  // stopping, and every accepted replay has run
      task = std::move(reads_.front());
      reads_.pop_front();
    }
    task(&rd);
  }
}

replay_result journal::impl::run_replay(reader& rd, const replay_request& req) {
  replay_result res;
  status st;
  // One read transaction: the head and the messages come from the same snapshot, so the
  // result ends exactly at head_seq even while the writer commits.
  if (int rc = rd.begin.run(); rc != SQLITE_OK) {
    st = detail::failure(rd.db.get(), rc, "begin replay");
  } else {
    st = read_history(rd, req, res);
    rd.commit.run();  // read-only: ending it can't lose anything
  }
  if (st.failed()) {
    remember_error(st);
    res = replay_result{};
    res.ec = st.ec;
    res.complete = false;
  }
  return res;
}

status journal::impl::read_history(reader& rd, const replay_request& req, replay_result& res) {
  sqlite3* db = rd.db.get();
  std::int64_t dest_id = 0;
  std::uint64_t head = 0, purged_seq = 0;
  std::int64_t purged_ms = 0;
  {
    reset_on_exit reset(rd.find_dest);
    rd.find_dest.bind_text(1, req.destination);
    const int rc = rd.find_dest.step();
    if (rc == SQLITE_DONE) return {};  // never seen: head 0, nothing, complete
    if (rc != SQLITE_ROW) return detail::failure(db, rc, "find destination");
    dest_id = rd.find_dest.column_int64(0);
    head = from_sql(rd.find_dest.column_int64(1));
    purged_seq = from_sql(rd.find_dest.column_int64(2));
    purged_ms = rd.find_dest.column_int64(3);
  }
  res.head_seq = head;

  // The request names the range [head - wanted + 1, head]; messages in it that are no longer
  // stored, or that a cap cuts off, make the result incomplete.
  std::uint64_t wanted = 0;
  std::uint64_t top = head;  // the newest seq the read returns
  bool lost = false;
  switch (req.mode) {
    case replay_request::kind::last:
      wanted = std::min(req.value, head);
      break;
    case replay_request::kind::after:
      wanted = req.value < head ? head - req.value : 0;
      break;
    case replay_request::kind::page:
      // Oldest first from after `value`: the read below ends at `top`, not at the head.
      wanted = req.value < head ? std::min<std::uint64_t>(head - req.value, req.max_messages) : 0;
      top = req.value + wanted;
      lost = purged_seq > req.value;
      break;
    case replay_request::kind::before: {
      // The newest `limit` below `value`: the read below ends at `top`, not at the head.
      top = std::min(head, req.value > 0 ? req.value - 1 : 0);
      const std::size_t limit =
          req.limit == 0 ? req.max_messages : std::min(req.limit, req.max_messages);
      wanted = std::min<std::uint64_t>(top, limit);
      break;
    }
    case replay_request::kind::since: {
      const auto since = to_sql(req.value);
      // Deleted messages had timestamps up to purged_ms: some of them were asked for.
      lost = purged_seq > 0 && purged_ms >= since;
      reset_on_exit reset(rd.first_since);
      rd.first_since.bind(1, dest_id);
      rd.first_since.bind(2, since);
      const int rc = rd.first_since.step();
      if (rc == SQLITE_ROW) {
        const auto first = from_sql(rd.first_since.column_int64(0));
        wanted = first <= head ? head - first + 1 : 0;
      } else if (rc != SQLITE_DONE) {
        return detail::failure(db, rc, "find first message since");
      }
      break;
    }
  }

  // Newest first, so the caps keep the newest messages: a replay stays contiguous with the
  // live messages that follow it.
  const std::uint64_t take = std::min<std::uint64_t>(wanted, req.max_messages);
  if (take > 0) {
    reset_on_exit reset(rd.range_desc);
    rd.range_desc.bind(1, dest_id);
    rd.range_desc.bind(2, to_sql(top - take + 1));
    rd.range_desc.bind(3, to_sql(top));
    rd.range_desc.bind(4, to_sql(take));
    std::uint64_t expected = top;
    std::size_t bytes = 0;
    int rc;
    while ((rc = rd.range_desc.step()) == SQLITE_ROW) {
      if (from_sql(rd.range_desc.column_int64(0)) != expected) break;  // deleted below here
      const auto headers = rd.range_desc.column_blob(2);
      const auto body = rd.range_desc.column_blob(3);
      const std::size_t size = headers.size() + body.size();
      if (size > req.max_bytes - std::min(bytes, req.max_bytes)) break;
      bytes += size;
      record& r = res.records.emplace_back();
      r.destination = req.destination;
      r.seq = expected--;
      r.timestamp_ms = rd.range_desc.column_int64(1);
      r.headers = decode_headers(headers);
      r.body.assign(body);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return detail::failure(db, rc, "read messages");
    std::reverse(res.records.begin(), res.records.end());
  }
  res.complete = !lost && res.records.size() == wanted;
  if (req.mode == replay_request::kind::before) {
    // Retention and purge delete from the oldest up: what is above purged_seq is stored.
    const std::uint64_t below = res.records.empty() ? top : res.records.front().seq - 1;
    res.older = below > purged_seq;
  }
  return {};
}

status journal::impl::read_stats(reader& rd, std::vector<destination_stats>& out) {
  sqlite3* db = rd.db.get();
  if (int rc = rd.begin.run(); rc != SQLITE_OK) return detail::failure(db, rc, "begin stats");
  status st;
  {
    reset_on_exit reset_list(rd.list_dests);
    int rc;
    while ((rc = rd.list_dests.step()) == SQLITE_ROW) {
      auto& s = out.emplace_back();
      s.destination = rd.list_dests.column_blob(1);
      s.last_seq = from_sql(rd.list_dests.column_int64(2));
      reset_on_exit reset_stats(rd.dest_stats);
      rd.dest_stats.bind(1, rd.list_dests.column_int64(0));
      rc = rd.dest_stats.step();
      if (rc != SQLITE_ROW) break;
      s.stored = from_sql(rd.dest_stats.column_int64(0));
      s.oldest_ms = rd.dest_stats.column_int64(1);  // NULL reads as 0 when nothing is stored
      s.newest_ms = rd.dest_stats.column_int64(2);
    }
    if (rc != SQLITE_DONE) st = detail::failure(db, rc, "read stats");
  }
  rd.commit.run();
  return st;
}

}  // namespace storage
