#pragma once

#include <filesystem>
#include <random>
#include <string>
#include <system_error>

namespace stompd_test {

// A fresh directory under the system temp dir, removed with everything in it on
// destruction. For journals and config files that must not touch the source tree.
class temp_dir {
 public:
  temp_dir()
      : path_(std::filesystem::temp_directory_path() /
              ("stompd-test-" + std::to_string(std::random_device{}()) + "-" +
               std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace stompd_test
