#include "core/wechatpay/key_cache.h"

#include <openssl/evp.h>

namespace callbackd::wechatpay {

template <class Key, class Parse>
Result<Key, KeyError> KeyCache::lookup(std::map<std::string, Entry<Key>>& entries, std::string_view pem,
                                       const std::string& source, Parse parse) {
  Digest digest{};
  unsigned int length = 0;
  const bool hashed =
      EVP_Digest(pem.data(), pem.size(), digest.data(), &length, EVP_sha256(), nullptr) == 1 && length == digest.size();
  if (hashed) {
    std::lock_guard lock(mutex_);
    if (auto it = entries.find(source); it != entries.end() && it->second.digest == digest) {
      ++counts_.reused;
      return it->second.answer;
    }
  }
  // Parsed outside the lock: another thread may parse the same file meanwhile, which costs
  // time but gives the same answer.
  auto answer = parse(pem, source);
  std::lock_guard lock(mutex_);
  ++counts_.parsed;
  if (hashed) entries.insert_or_assign(source, Entry<Key>{digest, answer});
  return answer;
}

Result<PrivateKey, KeyError> KeyCache::private_key(std::string_view pem, const std::string& source) {
  return lookup(private_keys_, pem, source, parse_private_key_pem);
}

Result<VerificationKey, KeyError> KeyCache::verification_key(std::string_view pem, const std::string& source) {
  return lookup(verification_keys_, pem, source, parse_verification_key_pem);
}

KeyCache::Counts KeyCache::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

}  // namespace callbackd::wechatpay
