// Shared helpers for the WeChat Pay protocol tests: fixture paths, temp files with chosen
// modes, and the test keys. Header-only so that each *_test.cpp stays self-contained.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/wechatpay/keys.h"

namespace callbackd::test {

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read test fixture " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The signing vectors: the repository's own copy of the project's shared vectors (../shared/vectors
// beside the original checkout), so that the suite passes in a clone wherever it lives.
inline std::filesystem::path vector_path(const std::string& name) {
  return std::filesystem::path(CALLBACKD_TEST_DATA) / "vectors" / name;
}

inline std::filesystem::path key_path(const std::string& name) {
  return std::filesystem::path(CALLBACKD_TEST_DATA) / "keys" / name;
}

// A private temp directory, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "callbackd-test.XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes `content` to NAME with exactly `mode` (umask does not apply) and returns its path.
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) const {
    const auto p = path_ / name;
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << content;
    }
    ::chmod(p.c_str(), mode);
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

inline wechatpay::PrivateKey go_test_private_key() {
  auto key = wechatpay::parse_private_key_pem(read_file(vector_path("go_test_private_key.pem")), "go test key");
  if (!key) throw std::runtime_error(key.error().message);
  return key.value();
}

inline wechatpay::VerificationKey verification_key_fixture(const std::string& name) {
  auto key = wechatpay::parse_verification_key_pem(read_file(key_path(name)), name);
  if (!key) throw std::runtime_error(key.error().message);
  return key.value();
}

inline wechatpay::PrivateKey private_key_fixture(const std::string& name) {
  auto key = wechatpay::parse_private_key_pem(read_file(key_path(name)), name);
  if (!key) throw std::runtime_error(key.error().message);
  return key.value();
}

}  // namespace callbackd::test
