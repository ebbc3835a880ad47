#include "storage/journal.hpp"

#include <memory>
#include <string>

namespace storage {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "storage"; }

  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::corrupt:
        return "journal file is corrupt or not a stompd journal";
      case errc::newer_schema:
        return "journal was written by a newer stompd";
      case errc::disk_full:
        return "disk full: the journal could not store the message";
      case errc::io_error:
        return "journal I/O error";
      case errc::closed:
        return "journal is closed";
    }
    return "unknown storage error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

journal_error::journal_error(std::error_code ec, const std::string& what)
    : std::system_error(ec, what), what_(std::make_shared<const std::string>(what)) {}

const char* journal_error::what() const noexcept { return what_->c_str(); }

}  // namespace storage
