// What signing and verifying costs callbackd per request, against raw RSA-2048 on the same
// machine: in-process EVP_PKEY_sign/verify over a precomputed digest, and `openssl speed`.
// Our overhead (message building, SHA-256 over it, nonce, base64, header formatting, key
// lookup, parsing) should stay under 10% of the RSA cost.
//
// The machine is shared, so each figure is the best of several short rounds, taken in turns
// (ours, raw, ours, raw, ...) so that a burst of load hits both sides alike; `openssl speed`
// runs before and after, and its better run is shown.
//
// Usage: bench_crypto [seconds]   (default 3: total per measurement, and openssl speed -seconds)
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"

using namespace callbackd::wechatpay;
using Clock = std::chrono::steady_clock;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `op` repeatedly for about `seconds` and returns microseconds per call.
template <class Op>
double time_per_op_us(double seconds, Op op) {
  long n = 0;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  Clock::time_point now;
  do {
    for (int i = 0; i < 8; ++i) op();
    n += 8;
    now = Clock::now();
  } while (now < until);
  return std::chrono::duration<double, std::micro>(now - start).count() / static_cast<double>(n);
}

volatile std::size_t g_sink;  // keeps results alive so nothing is optimised away

// `openssl speed -seconds N rsa2048`: "rsa 2048 bits 0.000370s 0.000011s   2700.0  41000.0"
bool openssl_speed(int seconds, double& sign_us, double& verify_us) {
  const std::string cmd = "openssl speed -seconds " + std::to_string(seconds) + " rsa2048 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return false;
  char line[512];
  bool found = false;
  while (std::fgets(line, sizeof line, pipe.get()) != nullptr) {
    double s = 0, v = 0, sps = 0, vps = 0;
    if (std::sscanf(line, "rsa 2048 bits %lfs %lfs %lf %lf", &s, &v, &sps, &vps) == 4) {
      sign_us = 1e6 / sps;
      verify_us = 1e6 / vps;
      found = true;
    }
  }
  return found;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  auto key = parse_private_key_pem(read_file(CALLBACKD_TEST_DATA "/vectors/go_test_private_key.pem"), "bench key");
  auto pub = parse_verification_key_pem(read_file(CALLBACKD_TEST_DATA "/vectors/go_test_public_key.pem"), "bench pub");
  if (!key || !pub) {
    std::fprintf(stderr, "bench_crypto: cannot load the test keys under %s\n", CALLBACKD_TEST_DATA);
    return 1;
  }
  const MerchantCredentials merchant{"1900009191", "1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C", key.value()};
  const std::string key_id = "PUB_KEY_ID_0114232134912410000000000000000000";
  KeySet keys;
  (void)keys.add(key_id, pub.value());
  (void)keys.add("5157F09EFDC096DE15EBE81A47057A7232F1B8E1", pub.value());  // a second entry, as in rotation

  // --- Raw RSA in this process: one private op and one public op on a SHA-256 digest. ---------
  unsigned char digest[32];
  unsigned int digest_len = 0;
  EVP_Digest("x", 1, digest, &digest_len, EVP_sha256(), nullptr);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> sctx(EVP_PKEY_CTX_new(key->native(), nullptr),
                                                                   EVP_PKEY_CTX_free);
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> vctx(EVP_PKEY_CTX_new(pub->native(), nullptr),
                                                                   EVP_PKEY_CTX_free);
  EVP_PKEY_sign_init(sctx.get());
  EVP_PKEY_CTX_set_rsa_padding(sctx.get(), RSA_PKCS1_PADDING);
  EVP_PKEY_CTX_set_signature_md(sctx.get(), EVP_sha256());
  EVP_PKEY_verify_init(vctx.get());
  EVP_PKEY_CTX_set_rsa_padding(vctx.get(), RSA_PKCS1_PADDING);
  EVP_PKEY_CTX_set_signature_md(vctx.get(), EVP_sha256());
  unsigned char sig[256];
  std::size_t sig_len = sizeof sig;
  EVP_PKEY_sign(sctx.get(), sig, &sig_len, digest, digest_len);
  // --- callbackd's path per request. -----------------------------------------------------------
  // Client: nonce, body (serialised once), Authorization header (message + SHA-256 + RSA sign +
  // base64). Then verify WeChat Pay's response: headers, key lookup, message, base64, RSA verify.
  const std::string body = favor_callbacks_request_body("9856888", "https://pay.weixin.qq.com/notify/marketing", true);
  const std::string response_body =
      R"({"update_time":"2015-05-20T13:29:35.120+08:00","notify_url":"https://pay.weixin.qq.com/notify/marketing"})";
  const std::int64_t ts = 1700000000;
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(ts));
  const auto response_sig =
      sign_response(key.value(), key_id, response_body, ts, "N0nce0123456789abcdefABCDEF01234").value();
  ResponseHeaders headers;
  headers.timestamp = response_sig.timestamp;
  headers.nonce = response_sig.nonce;
  headers.signature = response_sig.signature;
  headers.serial = response_sig.serial;
  headers.signature_type = response_sig.signature_type;
  if (!verify_response(keys, headers, response_body, now)) {
    std::fprintf(stderr, "bench_crypto: the benchmark response does not verify\n");
    return 1;
  }
  auto raw_sign_op = [&] {
    std::size_t len = sizeof sig;
    EVP_PKEY_sign(sctx.get(), sig, &len, digest, digest_len);
    g_sink = len;
  };
  auto raw_verify_op = [&] {
    g_sink = static_cast<std::size_t>(EVP_PKEY_verify(vctx.get(), sig, sig_len, digest, digest_len));
  };
  auto our_sign_op = [&] {
    const std::string nonce = make_nonce().value();
    const std::string request_body =
        favor_callbacks_request_body("9856888", "https://pay.weixin.qq.com/notify/marketing", true);
    g_sink = authorization_header(merchant, "POST", kFavorCallbacksPath, request_body, ts, nonce).value().size();
  };
  auto our_verify_op = [&] { g_sink = verify_response(keys, headers, response_body, now).ok() ? 1 : 0; };

  double speed_sign = 0, speed_verify = 0;
  bool have_speed = openssl_speed(static_cast<int>(seconds + 0.5), speed_sign, speed_verify);

  constexpr int kRounds = 10;
  const double round_seconds = seconds / kRounds;
  double raw_sign = 1e9, raw_verify = 1e9, our_sign = 1e9, our_verify = 1e9;
  for (int round = 0; round < kRounds; ++round) {
    our_sign = std::min(our_sign, time_per_op_us(round_seconds, our_sign_op));
    raw_sign = std::min(raw_sign, time_per_op_us(round_seconds, raw_sign_op));
    our_verify = std::min(our_verify, time_per_op_us(round_seconds / 4, our_verify_op));
    raw_verify = std::min(raw_verify, time_per_op_us(round_seconds / 4, raw_verify_op));
  }

  double speed_sign2 = 0, speed_verify2 = 0;
  if (openssl_speed(static_cast<int>(seconds + 0.5), speed_sign2, speed_verify2)) {
    if (!have_speed || speed_sign2 + speed_verify2 < speed_sign + speed_verify) {
      speed_sign = speed_sign2;
      speed_verify = speed_verify2;
    }
    have_speed = true;
  }
  const double our = our_sign + our_verify;
  const double raw = raw_sign + raw_verify;
  std::printf("per request (single thread, RSA-2048, %s)\n", OpenSSL_version(OPENSSL_VERSION));
  std::printf("  %-44s %9.1f us  (%7.0f /s)\n", "callbackd sign (nonce+body+Authorization)", our_sign, 1e6 / our_sign);
  std::printf("  %-44s %9.1f us  (%7.0f /s)\n", "callbackd verify (verify_response)", our_verify, 1e6 / our_verify);
  std::printf("  %-44s %9.1f us\n", "callbackd sign+verify", our);
  std::printf("  %-44s %9.1f us  (%7.0f /s)\n", "raw EVP_PKEY_sign (digest in)", raw_sign, 1e6 / raw_sign);
  std::printf("  %-44s %9.1f us  (%7.0f /s)\n", "raw EVP_PKEY_verify (digest in)", raw_verify, 1e6 / raw_verify);
  std::printf("  %-44s %9.1f us\n", "raw sign+verify", raw);
  if (have_speed) {
    std::printf("  %-44s %9.1f us  (%7.0f /s)\n", "openssl speed rsa2048 sign", speed_sign, 1e6 / speed_sign);
    std::printf("  %-44s %9.1f us  (%7.0f /s)\n", "openssl speed rsa2048 verify", speed_verify, 1e6 / speed_verify);
    std::printf("  %-44s %9.1f us\n", "openssl speed sign+verify", speed_sign + speed_verify);
  } else {
    std::printf("  openssl speed: not available\n");
  }
  std::printf("overhead above raw RSA (same process): %+.1f%% (%.1f us)\n", 100.0 * (our - raw) / raw, our - raw);
  if (have_speed) {
    const double speed = speed_sign + speed_verify;
    std::printf("overhead above openssl speed:          %+.1f%% (%.1f us)\n", 100.0 * (our - speed) / speed,
                our - speed);
  }
  std::printf("target: under +10%%\n");
  return 0;
}
