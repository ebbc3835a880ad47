#include "stomp/error.hpp"

#include <string>

namespace stomp {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "stomp"; }

  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::need_more:
        return "need more bytes";
      case errc::unknown_command:
        return "unknown command";
      case errc::malformed_header:
        return "malformed header";
      case errc::invalid_escape:
        return "invalid escape sequence in header";
      case errc::invalid_content_length:
        return "invalid content-length";
      case errc::missing_frame_end:
        return "missing NUL after content-length body";
      case errc::nul_in_header:
        return "NUL octet in frame head";
      case errc::frame_too_large:
        return "frame too large";
      case errc::too_many_headers:
        return "too many headers";
      case errc::header_line_too_long:
        return "header line too long";
      case errc::body_too_large:
        return "body too large";
    }
    return "unknown stomp error";
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace stomp
