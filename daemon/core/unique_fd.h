// Owns one file descriptor: closes it on destruction; moves, never copies. The key-file code
// (credentials.cpp, wechatpay/keys.cpp) opens, inspects and reads through descriptors so that
// the file checked is the file read; this keeps every exit path from leaking one.
#pragma once

#include <unistd.h>

#include <utility>

namespace callbackd {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }

  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

}  // namespace callbackd
