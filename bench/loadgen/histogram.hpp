#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bench {

// A log-linear histogram of non-negative integers (latencies in nanoseconds), laid out like
// HdrHistogram: values below 2^sub_bucket_bits are counted exactly, and every power of two
// above is split into 2^(sub_bucket_bits-1) equal buckets, so a bucket's width is at most
// 1/512 of its values (better than 2.5 significant digits) whatever the magnitude. Fixed
// memory (16,384 counters, 128 KiB); values above max_value() are counted at max_value().
//
// Not thread-safe: one per I/O thread, merged after the threads are joined.
class histogram {
 public:
  static constexpr unsigned sub_bucket_bits = 10;
  static constexpr unsigned value_bits = 40;  // 2^40 ns: about 18 minutes

  histogram();

  void record(std::uint64_t value) noexcept;
  void merge(const histogram& other);
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;
  // The smallest bucket bound at or below which `percent` % of the values fall (the highest
  // value equivalent to that bucket, capped at the maximum recorded): 0 when empty.
  std::uint64_t percentile(double percent) const noexcept;

  static constexpr std::uint64_t max_value() noexcept {
    return (std::uint64_t{1} << value_bits) - 1;
  }

 private:
  static std::size_t index_of(std::uint64_t value) noexcept;
  static std::uint64_t highest_equivalent(std::size_t index) noexcept;

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

}  // namespace bench
