// Keys parsed and checked once per file content. With thousands of tenants, every refresh of
// callbackd.tenants that changes a key column and every SIGHUP re-reads their key files; what
// costs is not reading them but decoding and checking the keys (keys.h). A KeyCache remembers,
// per file, the SHA-256 of the bytes it last parsed and what came of it (the key, or the
// KeyError): the same bytes again are answered from memory, new bytes at the same path (a key
// replaced in place) are parsed and checked again and replace the entry. Only the parsing is
// cached: whoever reads the file still checks its permissions every time (keys.h,
// read_private_key), since the point of that check is the file as it is now.
// One entry per path, so the cache is as large as the set of key files ever named.
// Thread-safe: the daemon's key loader thread and the io thread share one.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "core/wechatpay/keys.h"

namespace callbackd::wechatpay {

class KeyCache {
 public:
  // parse_private_key_pem(pem, source), or its answer for the same `source` and bytes before.
  Result<PrivateKey, KeyError> private_key(std::string_view pem, const std::string& source);
  // parse_verification_key_pem(pem, source), likewise.
  Result<VerificationKey, KeyError> verification_key(std::string_view pem, const std::string& source);

  struct Counts {
    std::uint64_t parsed = 0;  // keys decoded and checked (new bytes, or a path not seen)
    std::uint64_t reused = 0;  // answered from the cache
  };
  Counts counts() const;

 private:
  using Digest = std::array<unsigned char, 32>;
  template <class Key>
  struct Entry {
    Digest digest;
    Result<Key, KeyError> answer;
  };
  template <class Key, class Parse>
  Result<Key, KeyError> lookup(std::map<std::string, Entry<Key>>& entries, std::string_view pem,
                               const std::string& source, Parse parse);

  mutable std::mutex mutex_;
  std::map<std::string, Entry<PrivateKey>> private_keys_;
  std::map<std::string, Entry<VerificationKey>> verification_keys_;
  Counts counts_;
};

}  // namespace callbackd::wechatpay
