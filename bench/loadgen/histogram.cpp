#include "histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace bench {

namespace {

constexpr std::size_t half_bucket = std::size_t{1} << (histogram::sub_bucket_bits - 1);
// Exact buckets for [0, 2^bits), then half_bucket more per power of two up to 2^value_bits.
constexpr std::size_t bucket_count =
    (histogram::value_bits - histogram::sub_bucket_bits + 2) * half_bucket;

}  // namespace

histogram::histogram() : counts_(bucket_count, 0) {}

std::size_t histogram::index_of(std::uint64_t value) noexcept {
  if (value < (std::uint64_t{1} << sub_bucket_bits)) return static_cast<std::size_t>(value);
  // shift >= 1; value >> shift lies in [half_bucket, 2 * half_bucket).
  unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(value));
  unsigned shift = msb - (sub_bucket_bits - 1);
  return shift * half_bucket + static_cast<std::size_t>(value >> shift);
}

std::uint64_t histogram::highest_equivalent(std::size_t index) noexcept {
  if (index < (std::size_t{1} << sub_bucket_bits)) return index;
  std::size_t shift = index / half_bucket - 1;
  std::uint64_t mantissa = index - shift * half_bucket;
  return (mantissa << shift) + ((std::uint64_t{1} << shift) - 1);
}

void histogram::record(std::uint64_t value) noexcept {
  value = std::min(value, max_value());
  ++counts_[index_of(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<long double>(value);
}

void histogram::merge(const histogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

void histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_ = ~std::uint64_t{0};
  max_ = 0;
  sum_ = 0;
}

double histogram::mean() const noexcept {
  return count_ ? static_cast<double>(sum_ / static_cast<long double>(count_)) : 0.0;
}

std::uint64_t histogram::percentile(double percent) const noexcept {
  if (count_ == 0) return 0;
  auto wanted = static_cast<std::uint64_t>(
      std::ceil(std::clamp(percent, 0.0, 100.0) / 100.0 * static_cast<double>(count_)));
  wanted = std::max<std::uint64_t>(wanted, 1);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= wanted) return std::min(highest_equivalent(i), max_);
  }
  return max_;
}

}  // namespace bench
