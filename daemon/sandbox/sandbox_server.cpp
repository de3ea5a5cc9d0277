// The sandbox's only Beast translation unit. Decisions (what to answer) are taken by
// Impl::decide() under one mutex from the pure parts (rate_window, faults, favor_request);
// the coroutines around it only move bytes and carry out transport faults.
#include "http/asio_coroutine.h"  // first: the Boost 1.74 + g++ 12 fixes

#include "sandbox/sandbox_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <thread>

#include "core/error.h"
#include "core/wechatpay/authorization.h"
#include "core/wechatpay/encoding.h"
#include "core/wechatpay/favor_callbacks.h"
#include "core/wechatpay/keys.h"
#include "core/wechatpay/platform_certificates.h"
#include "core/wechatpay/signing.h"
#include "core/wechatpay/verification.h"
#include "sandbox/favor_request.h"
#include "sandbox/rate_window.h"

namespace callbackd::sandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
namespace wp = callbackd::wechatpay;
using asio::awaitable;
using asio::use_awaitable;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using SystemClock = std::chrono::system_clock;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kStatsPath = "/sandbox/stats";
constexpr std::string_view kConfigPath = "/sandbox/config";
constexpr std::string_view kSetPath = "/sandbox/set";
// The `unknown_serial` fault's Wechatpay-Serial: the public-key id format, a key nobody has.
constexpr const char* kUnknownPlatformKeyId = "PUB_KEY_ID_0199999999999999999999999999";

std::string utc_rfc3339(SystemClock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[80];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

std::string error_body(std::string_view code, std::string_view message) {
  return nlohmann::json{{"code", code}, {"message", message}}.dump();
}

beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

// Hostile input must not grow the stats map with huge keys.
std::string short_id(std::string_view s) { return std::string(s.substr(0, 32)); }

struct MerchantKey {
  std::string serial_no;
  wp::VerificationKey key;
  std::optional<wp::ApiV3Key> apiv3_key;  // certificate mode
};

// A platform certificate the sandbox lists in /v3/certificates and may sign with.
struct PlatformCertificate {
  wp::PrivateKey key;
  std::string serial;
  std::string pem;
  SystemClock::time_point not_before;
  SystemClock::time_point not_after;
};

// The `unlisted_signer` certificate fault's serial: a hex serial no listed certificate has.
constexpr const char* kUnlistedSignerSerial = "7E57BAD5160E5E21A1";

// RFC 3339 in Beijing time, seconds precision, as /v3/certificates writes its times.
std::string beijing_rfc3339(SystemClock::time_point t) {
  const std::time_t secs = SystemClock::to_time_t(t + std::chrono::hours(8));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+08:00", &tm);
  return buf;
}

struct CallerStats {
  std::uint64_t requests{0};
  std::uint64_t certificate_downloads{0};  // GET /v3/certificates answered 200
  std::map<std::string, std::uint64_t> outcomes;
  PeakTracker peaks;
  // GET /v3/marketing/favor/callbacks, apart from the set calls above.
  std::uint64_t reads{0};
  std::map<std::string, std::uint64_t> read_outcomes;
  PeakTracker read_peaks;
};

struct StoredSetting {
  std::string notify_url;
  bool push_switch{true};
  std::string update_time;
};

// What the connection coroutine must do with one request.
struct Decision {
  enum class Action { respond, timeout, reset, close, garbage } action{Action::respond};
  int status{200};
  std::string body;
  std::string content_type{"application/json"};
  bool sign{true};  // API responses are signed; /sandbox/* are not
  bool corrupt_signature{false};
  bool unknown_serial{false};  // sign correctly, but name a key id nobody was given
  // Certificate mode: the platform certificate's key and serial instead of platform_key(_id).
  std::optional<wp::PrivateKey> signer;
  std::string signer_id;
  std::chrono::seconds skew{0};              // the response's clock (timestamp and update_time)
  std::chrono::seconds update_time_skew{0};  // update_time only
  std::chrono::milliseconds delay{0};
  std::string sub_merchant;  // non-empty: counted in flight until answered
  std::string request_id;
};

// The faults a read and a set are answered alike by: an error status, a broken transport, a
// proxy's page, a stale connection closed, a delay, a skewed clock, a bad signature or serial.
// True when the fault answers the request (or drops it); false when it goes on to be answered,
// perhaps changed. `fault_name` is cleared when the fault does not apply here (a stale close on
// a fresh connection is served normally).
bool answered_by_fault(const FaultAction& fault, bool reused_connection, Decision& d, std::string& fault_name) {
  switch (fault.kind) {
    case FaultKind::error:
      d.status = fault.status;
      d.body = error_body(fault.code, fault.message);
      return true;
    case FaultKind::timeout:
      d.action = Decision::Action::timeout;
      return true;
    case FaultKind::reset:
      d.action = Decision::Action::reset;
      return true;
    case FaultKind::malformed_http:
      d.action = Decision::Action::garbage;
      return true;
    case FaultKind::proxy_answer:
      // Answered in front of WeChat Pay: nothing stored, nothing of WeChat Pay's in it.
      d.status = fault.status;
      d.body = proxy_page(fault.status, fault.empty_body);
      d.content_type = "text/html";
      d.sign = false;
      d.request_id.clear();
      return true;
    case FaultKind::stale_close:
      if (reused_connection) {
        d.action = Decision::Action::close;
        return true;
      }
      fault_name.clear();
      return false;
    case FaultKind::delay:
      d.delay = fault.delay;
      return false;
    case FaultKind::clock_skew:
      d.skew = fault.skew;
      return false;
    case FaultKind::bad_signature:
      d.corrupt_signature = true;
      return false;
    case FaultKind::unknown_serial:
      d.unknown_serial = true;
      return false;
    default:  // faults of a set's answer body (set_favor_callback's own)
      return false;
  }
}

}  // namespace

struct SandboxServer::Impl {
  explicit Impl(SandboxConfig c) : config(std::move(c)), tls(ssl::context::tls_server), acceptor(io) {}

  SandboxConfig config;
  // Declared before `io`: destroying `io` destroys the pending session coroutines, whose TLS
  // streams must go while their context still exists.
  ssl::context tls;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::thread thread;
  std::uint16_t bound_port{0};
  std::optional<wp::PrivateKey> platform_key;
  std::string platform_key_id;
  // Certificate mode: the platform certificate, then the rotation's; the second signs from
  // started + switch_after on.
  std::vector<PlatformCertificate> platform_certificates;
  std::chrono::milliseconds listed_after{0};
  std::chrono::milliseconds switch_after{0};
  const SteadyClock::time_point started = SteadyClock::now();
  std::optional<wp::PrivateKey> unlisted_signer;  // made on first use (unlisted_signer fault)
  std::map<std::string, MerchantKey, std::less<>> merchants;

  // Everything below is shared between the io thread and stats/apply callers.
  mutable std::mutex mu;
  Limits limits;
  FaultPlan faults;
  std::map<std::string, CallerRateLimiter, std::less<>> limiters;
  std::map<std::string, CallerRateLimiter, std::less<>> read_limiters;  // GET favor callbacks
  std::uint64_t out_of_band_sets{0};
  std::map<std::string, CallerStats, std::less<>> callers;
  // Per remote (source) address: set calls only (the limit "单ip" is the set call's).
  std::map<std::string, CallerRateLimiter, std::less<>> address_limiters;
  std::map<std::string, CallerStats, std::less<>> addresses;
  std::map<std::string, StoredSetting, std::less<>> settings;
  std::map<std::string, int, std::less<>> in_flight;
  std::uint64_t overlapping{0};
  std::uint64_t request_seq{0};
  std::uint64_t connections{0};
  std::ofstream record;

  void load() {
    std::vector<Problem> problems;
    if (auto remote = remote_listen_problem(config)) problems.push_back(std::move(*remote));
    error_code ec;
    tls.use_certificate_chain_file(config.tls_certificate_file, ec);
    if (ec)
      problems.push_back({config.source + ": tls.certificate_file",
                          "cannot load '" + config.tls_certificate_file + "': " + ec.message(), ""});
    tls.use_private_key_file(config.tls_private_key_file, ssl::context::pem, ec);
    if (ec)
      problems.push_back({config.source + ": tls.private_key_file",
                          "cannot load '" + config.tls_private_key_file + "': " + ec.message(), ""});
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);

    auto key = wp::load_private_key_file(config.platform.private_key_file);
    if (!key)
      problems.push_back(key.error().to_problem());
    else
      platform_key = key.value();
    platform_key_id = config.platform.key_id;
    if (config.platform.certificate_file) {
      // Certificate mode: responses carry the platform certificate's serial.
      auto cert = wp::load_verification_key_file(*config.platform.certificate_file);
      if (!cert || !cert.value().certificate()) {
        problems.push_back({config.source + ": platform.certificate_file",
                            cert ? "not an X.509 certificate" : cert.error().message, ""});
      } else {
        if (platform_key_id.empty()) platform_key_id = cert.value().certificate()->serial_hex;
        if (platform_key && !wp::keys_match(*platform_key, cert.value()))
          problems.push_back(
              {config.source + ": platform", "private_key_file does not belong to certificate_file", ""});
        else if (platform_key)
          add_platform_certificate(*platform_key, *config.platform.certificate_file, "platform", problems);
      }
    }
    if (config.platform.rotation) {
      const auto& rotation = *config.platform.rotation;
      listed_after = rotation.listed_after;
      switch_after = rotation.switch_after;
      auto next_key = wp::load_private_key_file(rotation.private_key_file);
      if (!next_key)
        problems.push_back(next_key.error().to_problem());
      else
        add_platform_certificate(next_key.value(), rotation.certificate_file, "platform.rotation", problems);
    }
    for (const auto& m : config.merchants) {
      auto pub = wp::load_verification_key_file(m.public_key_file);
      if (!pub) {
        problems.push_back(pub.error().to_problem());
        continue;
      }
      std::optional<wp::ApiV3Key> apiv3_key;
      if (m.apiv3_key_file) {
        std::ifstream in(*m.apiv3_key_file, std::ios::binary);
        std::ostringstream bytes;
        bytes << in.rdbuf();
        auto parsed = wp::parse_apiv3_key(in ? bytes.str() : std::string(), *m.apiv3_key_file);
        if (!in)
          problems.push_back({config.source + ": merchants", "cannot read '" + *m.apiv3_key_file + "'", ""});
        else if (!parsed)
          problems.push_back(parsed.error().to_problem());
        else
          apiv3_key = parsed.value();
      }
      merchants.insert_or_assign(m.caller_mchid, MerchantKey{m.serial_no, pub.value(), apiv3_key});
    }
    if (config.record_file) {
      record.open(*config.record_file, std::ios::app);
      if (!record)
        problems.push_back(
            {config.source + ": record_file", "cannot open '" + *config.record_file + "' for appending", ""});
    }
    limits = config.limits;
    faults = config.faults;
    if (!problems.empty()) throw StartupError(std::move(problems));
  }

  void add_platform_certificate(const wp::PrivateKey& key, const std::string& file, const std::string& where,
                                std::vector<Problem>& problems) {
    std::ifstream in(file, std::ios::binary);
    std::ostringstream pem;
    pem << in.rdbuf();
    auto cert = wp::platform_certificate_from_pem(pem.str(), file);
    if (!in || !cert) {
      problems.push_back({config.source + ": " + where + ".certificate_file",
                          cert ? "cannot read '" + file + "'" : cert.error().message, ""});
      return;
    }
    if (!wp::keys_match(key, cert->key)) {
      problems.push_back({config.source + ": " + where, "private_key_file does not belong to certificate_file", ""});
      return;
    }
    platform_certificates.push_back({key, cert->serial, cert->pem, cert->effective, cert->expiry});
  }

  // The certificate that signs certificate-mode merchants' responses at `now`.
  const PlatformCertificate& signing_certificate(SteadyClock::time_point now) const {
    const bool switched = platform_certificates.size() > 1 && now - started >= switch_after;
    return platform_certificates[switched ? 1 : 0];
  }

  // The certificates /v3/certificates lists at `now`: the rotation's from listed_after on.
  std::size_t listed_certificates(SteadyClock::time_point now) const {
    return platform_certificates.size() > 1 && now - started < listed_after ? 1 : platform_certificates.size();
  }

  // GET /v3/certificates for a certificate-mode merchant: every listed certificate encrypted
  // with its APIv3 key, as WeChat Pay answers; `fault` spoils it. Signed with the listed
  // certificate the request's Wechatpay-Serial names (the one the client already trusts), as
  // WeChat Pay lets that header choose the signing key; otherwise with the one in use.
  void answer_certificates(Decision& d, const wp::ApiV3Key& key, std::optional<CertificateFault> fault,
                           std::string_view requested_serial, SteadyClock::time_point now) {
    std::vector<wp::CertificateToList> list;
    std::vector<std::string> nonces;
    const std::size_t listed = listed_certificates(now);
    for (std::size_t i = 0; i < listed; ++i) {
      const auto& c = platform_certificates[i];
      if (c.serial == requested_serial) {
        d.signer = c.key;
        d.signer_id = c.serial;
      }
      list.push_back({c.serial, beijing_rfc3339(c.not_before), beijing_rfc3339(c.not_after), c.pem});
      auto nonce = wp::make_nonce();
      nonces.push_back(nonce ? nonce.value().substr(0, wp::kGcmNonceBytes) : std::string(wp::kGcmNonceBytes, 'n'));
    }
    auto body = wp::certificates_answer(list, key, nonces);
    if (!body) {
      d.status = 500;
      d.body = error_body("SYSTEM_ERROR", body.error().message);
      return;
    }
    d.body = std::move(body).value();
    if (fault == CertificateFault::bad_tag) {
      // The last byte of the first ciphertext is the tag's: flip it, keep valid base64.
      auto j = nlohmann::ordered_json::parse(d.body);
      auto& ciphertext = j["data"][0]["encrypt_certificate"]["ciphertext"];
      auto sealed = wp::base64_decode(ciphertext.get<std::string>());
      if (sealed && !sealed->empty()) {
        sealed->back() = static_cast<char>(sealed->back() ^ 0x01);
        ciphertext = wp::base64_encode(*sealed);
      }
      d.body = j.dump();
    } else if (fault == CertificateFault::unlisted_signer) {
      if (!unlisted_signer) {
        std::shared_ptr<EVP_PKEY> pkey(EVP_RSA_gen(2048), EVP_PKEY_free);
        if (pkey) unlisted_signer = wp::PrivateKey(std::move(pkey));
      }
      d.signer = unlisted_signer;
      d.signer_id = kUnlistedSignerSerial;
    }
  }

  void bind() {
    error_code ec;
    const auto address = asio::ip::make_address(config.listen_address, ec);
    if (ec)
      throw StartupError(
          Problem{config.source + ": listen", "'" + config.listen_address + "' is not an IP address", ""});
    const tcp::endpoint ep(address, config.port);
    acceptor.open(ep.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(ep, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw StartupError(Problem{
          config.source + ": listen",
          "cannot listen on " + config.listen_address + ":" + std::to_string(config.port) + ": " + ec.message(), ""});
    bound_port = acceptor.local_endpoint().port();
    if (config.port_file) {
      std::ofstream pf(*config.port_file, std::ios::trunc);
      pf << bound_port << "\n";
      if (!pf)
        throw StartupError(Problem{config.source + ": port_file", "cannot write '" + *config.port_file + "'", ""});
    }
    asio::co_spawn(io, accept_loop(), asio::detached);
  }

  awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
      {
        std::lock_guard lock(mu);
        ++connections;
      }
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }

  // One TLS connection: handshake, then requests until the client closes, the keep-alive
  // idle timeout fires (as WeChat Pay's does) or a fault ends it.
  awaitable<void> session(tcp::socket socket) {
    error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    // The client's address, for the per-source-address limit and counts.
    const std::string remote = peer_ec ? std::string() : peer.address().to_string();
    // POST /sandbox/set changes what "WeChat Pay" holds behind the daemon's back: only from
    // this machine, even when the sandbox listens beyond it (--allow-remote).
    const bool from_loopback = !peer_ec && peer.address().is_loopback();
    beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), tls);
    auto& tcp_stream = beast::get_lowest_layer(stream);
    error_code ec;
    tcp_stream.expires_after(std::chrono::seconds(10));
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;  // e.g. the client refused our certificate: nothing to answer
    beast::flat_buffer buffer;
    for (std::uint64_t on_connection = 0;; ++on_connection) {
      Limits current;
      {
        std::lock_guard lock(mu);
        current = limits;
      }
      tcp_stream.expires_after(current.idle_timeout);
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(current.max_body_bytes);
      co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::body_limit) {
        Decision d;
        d.status = 413;
        d.body = error_body("PARAM_ERROR", "请求体过大");
        d.sign = false;
        co_await write(stream, d, false);
        break;
      }
      if (ec) break;  // idle timeout, client closed, or garbage: close like a server would
      auto request = parser.release();
      Decision d = decide(request, on_connection > 0, remote, from_loopback);
      if (d.delay.count() > 0) {
        asio::steady_timer timer(io, d.delay);
        co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      bool keep_going = true;
      switch (d.action) {
        case Decision::Action::respond:
          keep_going = co_await write(stream, d, request.keep_alive());
          break;
        case Decision::Action::timeout: {
          // Say nothing; the client's deadline has to cut this off.
          asio::steady_timer timer(io, current.timeout_hold);
          co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
          keep_going = false;
          break;
        }
        case Decision::Action::reset: {
          // SO_LINGER 0 turns close() into an RST: a reset with no response byte.
          error_code ignored;
          tcp_stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
          tcp_stream.socket().close(ignored);
          keep_going = false;
          break;
        }
        case Decision::Action::close:
          keep_going = false;
          break;
        case Decision::Action::garbage: {
          // A status line no HTTP parser accepts, over the real TLS stream.
          static constexpr std::string_view kGarbage = "HTTP/1.1 2OO OK\r\nContent-Length: banana\r\n\r\n{}";
          co_await asio::async_write(stream, asio::buffer(kGarbage.data(), kGarbage.size()),
                                     asio::redirect_error(use_awaitable, ec));
          keep_going = false;
          break;
        }
      }
      finish(d);
      if (!keep_going) break;
    }
    error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp_stream.socket().close(ignored);
  }

  awaitable<bool> write(beast::ssl_stream<beast::tcp_stream>& stream, const Decision& d, bool keep_alive) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(d.status), 11};
    res.set(bhttp::field::server, "callbackd-sandbox/" CALLBACKD_VERSION);
    res.set(bhttp::field::content_type, d.content_type);
    if (!d.request_id.empty()) res.set(bsv(wp::kHeaderRequestId), d.request_id);
    const wp::PrivateKey* signer = d.signer ? &*d.signer : platform_key ? &*platform_key : nullptr;
    if (d.sign && signer) {
      auto nonce = wp::make_nonce();
      const auto ts =
          std::chrono::duration_cast<std::chrono::seconds>((SystemClock::now() + d.skew).time_since_epoch()).count();
      // A bad signature is a real signature over other bytes: it decodes, it just does not verify.
      const std::string signed_body = d.corrupt_signature ? d.body + " " : d.body;
      // An unknown serial: the same key signs, so only the serial's lookup can fail.
      const std::string key_id = d.unknown_serial ? kUnknownPlatformKeyId : d.signer ? d.signer_id : platform_key_id;
      auto sig = nonce ? wp::sign_response(*signer, key_id, signed_body, ts, nonce.value())
                       : Result<wp::ResponseSignature, wp::CryptoError>(wp::CryptoError{"no nonce"});
      if (sig) {
        res.set(bsv(wp::kHeaderTimestamp), sig.value().timestamp);
        res.set(bsv(wp::kHeaderNonce), sig.value().nonce);
        res.set(bsv(wp::kHeaderSignature), sig.value().signature);
        res.set(bsv(wp::kHeaderSerial), sig.value().serial);
        res.set(bsv(wp::kHeaderSignatureType), sig.value().signature_type);
      }
    }
    res.keep_alive(keep_alive);
    res.body() = d.body;
    res.prepare_payload();
    error_code ec;
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
    co_await bhttp::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && keep_alive;
  }

  void finish(const Decision& d) {
    if (d.sub_merchant.empty()) return;
    std::lock_guard lock(mu);
    if (auto it = in_flight.find(d.sub_merchant); it != in_flight.end() && --it->second <= 0) in_flight.erase(it);
  }

  // Unique per process start (so that two runs' records never share an id) and per request.
  const std::uint64_t request_id_prefix =
      static_cast<std::uint64_t>(SystemClock::now().time_since_epoch().count()) * 0x9E3779B97F4A7C15ULL;
  std::string next_request_id(std::uint64_t seq) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%016llX%016llX", static_cast<unsigned long long>(request_id_prefix),
                  static_cast<unsigned long long>(seq));
    return buf;
  }

  // Everything WeChat Pay would decide about one request, in its order: authentication,
  // rate limit, body validation, then the (possibly faulty) answer. Runs under `mu`.
  // `remote`: the client's address, for the per-source-address limit and counts.
  Decision decide(const bhttp::request<bhttp::string_body>& req, bool reused_connection, const std::string& remote,
                  bool from_loopback) {
    const std::string target(req.target());
    const auto qpos = target.find('?');
    const std::string path = target.substr(0, qpos);
    const std::string query = qpos == std::string::npos ? "" : target.substr(qpos + 1);

    if (path == kStatsPath && req.method() == bhttp::verb::get) {
      Decision d;
      d.body = stats_json();
      d.sign = false;
      return d;
    }
    if (path == kConfigPath && req.method() == bhttp::verb::post) {
      Decision d;
      d.sign = false;
      try {
        apply(parse_runtime_update(req.body(), "POST /sandbox/config"));
        d.body = R"({"ok":true})";
      } catch (const StartupError& e) {
        d.status = 400;
        d.body = error_body("PARAM_ERROR", e.what());
      }
      return d;
    }

    if (path == kSetPath && req.method() == bhttp::verb::post) {
      Decision d;
      d.sign = false;
      if (!from_loopback) {
        d.status = 403;
        d.body = error_body("NO_AUTH", "POST /sandbox/set is accepted from loopback only");
        return d;
      }
      auto changed = parse_out_of_band_set(req.body());
      if (!changed) {
        d.status = 400;
        d.body = error_body("PARAM_ERROR", changed.error().message);
        return d;
      }
      std::lock_guard lock(mu);
      for (const auto& set : changed.value()) {
        if (set.notify_url.empty()) {
          settings.erase(set.sub_mchid);  // nothing set any more
        } else {
          auto& stored = settings[set.sub_mchid];
          stored.notify_url = set.notify_url;
          if (set.push_switch) stored.push_switch = *set.push_switch;
          stored.update_time = beijing_update_time(SystemClock::now());
        }
        ++out_of_band_sets;
      }
      d.body = nlohmann::ordered_json{{"ok", true}, {"changed", changed.value().size()}}.dump();
      return d;
    }

    std::lock_guard lock(mu);
    const std::uint64_t seq = request_seq++;
    const auto now_sys = SystemClock::now();
    const auto now = SteadyClock::now();
    Decision d;
    d.request_id = next_request_id(seq);
    std::string caller = "-";
    std::string sub_merchant;
    std::string fault_name;
    bool signature_verified = false;
    CallerStats* address_stats = nullptr;  // a set call: counted for its source address too
    bool is_read = false;                  // GET /v3/marketing/favor/callbacks?mchid=

    auto answer_error = [&](int status, std::string_view code, std::string_view message) {
      d.status = status;
      d.body = error_body(code, message);
    };

    [&] {
      const bool certificates = path == wp::kCertificatesPath;
      if (path != wp::kFavorCallbacksPath && !certificates)
        return answer_error(404, "RESOURCE_NOT_EXISTS", "接口不存在");
      const bool is_post = req.method() == bhttp::verb::post && !certificates;
      if (!is_post && req.method() != bhttp::verb::get)
        return answer_error(405, "METHOD_NOT_ALLOWED", "不支持的请求方法");

      const auto auth_it = req.find(bhttp::field::authorization);
      if (auth_it == req.end()) return answer_error(401, "SIGN_ERROR", "缺少Authorization请求头");
      auto fields = wp::parse_authorization(std::string_view(auth_it->value().data(), auth_it->value().size()));
      if (!fields) return answer_error(401, "SIGN_ERROR", "Http头Authorization值格式错误: " + fields.error().message);
      caller = short_id(fields.value().caller_mchid);
      // Every request naming a caller counts for its pacing statistics, refused or not; reads of
      // the favor callbacks setting in their own window (their own limit, get_per_second).
      auto& cs = callers[caller];
      is_read = path == wp::kFavorCallbacksPath && req.method() == bhttp::verb::get;
      (is_read ? cs.read_peaks : cs.peaks).record(now);
      const auto merchant = merchants.find(fields.value().caller_mchid);
      if (merchant == merchants.end()) return answer_error(401, "SIGN_ERROR", "商户号不存在或未开通API v3");
      if (merchant->second.serial_no != fields.value().serial_no)
        return answer_error(401, "SIGN_ERROR", "商户证书序列号有误。");
      switch (wp::verify_request(fields.value(), merchant->second.key,
                                 std::string_view(req.method_string().data(), req.method_string().size()), target,
                                 req.body(), now_sys)) {
        case wp::RequestCheck::valid:
          break;
        case wp::RequestCheck::stale_timestamp:
          return answer_error(401, "SIGN_ERROR", "请求时间戳与服务器时间相差超过5分钟");
        case wp::RequestCheck::bad_base64:
        case wp::RequestCheck::bad_signature:
          return answer_error(401, "SIGN_ERROR", "错误的签名，验签失败");
      }
      signature_verified = true;
      // Certificate mode: signed with the platform certificate in use (the rotation's, once
      // switched), named by its serial.
      if (merchant->second.apiv3_key && !platform_certificates.empty()) {
        const auto& in_use = signing_certificate(now);
        d.signer = in_use.key;
        d.signer_id = in_use.serial;
      }

      if (certificates) {
        // Public-key merchants have no platform certificate (docs/wechatpay-v3.md 4a).
        if (!merchant->second.apiv3_key) return answer_error(404, "RESOURCE_NOT_EXISTS", "无可用的平台证书");
        const auto fault = faults.certificates_by_caller.find(fields.value().caller_mchid);
        std::optional<CertificateFault> chosen;
        if (fault != faults.certificates_by_caller.end()) {
          chosen = fault->second;
          fault_name = std::string(to_string(fault->second));
        }
        const auto requested = req.find(bsv(wp::kHeaderSerial));
        answer_certificates(d, *merchant->second.apiv3_key, chosen,
                            requested == req.end()
                                ? std::string_view()
                                : std::string_view(requested->value().data(), requested->value().size()),
                            now);
        if (d.status == 200) ++cs.certificate_downloads;
        return;
      }

      if (!is_post) {
        auto [read_limiter, read_inserted] =
            read_limiters.try_emplace(caller, limits.get_per_second, limits.get_per_second * 60);
        (void)read_inserted;
        if (!read_limiter->second.try_admit(now)) return answer_error(429, "FREQUENCY_LIMIT_EXCEED", "接口限频");
        auto mchid = parse_favor_query(query);
        if (!mchid) return answer_error(400, "PARAM_ERROR", mchid.error().message);
        sub_merchant = mchid.value();
        // Faults apply to reads as to sets (the same plan, the same choice per sub-merchant).
        const FaultAction fault = choose_fault(faults, sub_merchant, seq);
        if (fault.kind != FaultKind::none) fault_name = std::string(to_string(fault.kind));
        if (answered_by_fault(fault, reused_connection, d, fault_name)) return;
        // The body faults concern a set's answer; a read is answered as usual.
        if (fault.kind == FaultKind::update_time_skew || fault.kind == FaultKind::odd_update_time ||
            fault.kind == FaultKind::malformed_body || fault.kind == FaultKind::oversized_body)
          fault_name.clear();
        const auto it = settings.find(sub_merchant);
        if (it == settings.end()) return answer_error(404, "RESOURCE_NOT_EXISTS", "未设置通知地址");
        d.body = nlohmann::ordered_json{{"mchid", sub_merchant}, {"notify_url", it->second.notify_url}}.dump();
        return;
      }

      auto [limiter, inserted] = limiters.try_emplace(caller, limits.window_1s, limits.window_60s);
      (void)inserted;
      address_stats = &addresses[remote];
      address_stats->peaks.record(now);
      CallerRateLimiter* address_limiter = nullptr;
      if (limits.per_source_address_per_minute) {
        const auto w = limits_from_rate(*limits.per_source_address_per_minute);
        address_limiter = &address_limiters.try_emplace(remote, w.per_1s, w.per_60s).first->second;
      }
      // Both the caller's and the address's windows must have room; a refused request uses
      // neither's quota.
      if (!limiter->second.allows(now) || (address_limiter && !address_limiter->allows(now)))
        return answer_error(429, "FREQUENCY_LIMIT_EXCEED", "接口限频");
      limiter->second.add(now);
      if (address_limiter) address_limiter->add(now);

      auto body = parse_favor_set_request(req.body());
      if (!body) return answer_error(400, "PARAM_ERROR", body.error().message);
      sub_merchant = body.value().sub_mchid;
      if (in_flight[sub_merchant]++ > 0) ++overlapping;
      d.sub_merchant = sub_merchant;

      const FaultAction fault = choose_fault(faults, sub_merchant, seq);
      if (fault.kind != FaultKind::none) fault_name = std::string(to_string(fault.kind));
      if (answered_by_fault(fault, reused_connection, d, fault_name)) return;
      if (fault.kind == FaultKind::update_time_skew) d.update_time_skew = fault.skew;

      auto& stored = settings[sub_merchant];
      stored.notify_url = body.value().notify_url;
      if (body.value().push_switch) stored.push_switch = *body.value().push_switch;
      stored.update_time = beijing_update_time(now_sys + d.skew + d.update_time_skew);
      if (fault.kind == FaultKind::odd_update_time)
        stored.update_time = fault.update_time ? *fault.update_time : beijing_update_time(now_sys, true);
      if (fault.kind == FaultKind::malformed_body) {
        // Cut mid-value: valid HTTP, signed correctly, not the documented JSON.
        d.body = R"({"update_time":")" + stored.update_time + R"(","notify_url":)";
      } else if (fault.kind == FaultKind::oversized_body) {
        nlohmann::ordered_json j{{"update_time", stored.update_time}, {"notify_url", stored.notify_url}};
        j["padding"] = std::string(fault.size_bytes, 'x');
        d.body = j.dump();
      } else {
        d.body = nlohmann::ordered_json{{"update_time", stored.update_time}, {"notify_url", stored.notify_url}}.dump();
      }
    }();

    // Outcome for stats and the record.
    std::string code;
    if (d.action == Decision::Action::respond && d.status >= 400) code = wp::parse_error_body(d.body).code;
    std::string outcome;
    switch (d.action) {
      case Decision::Action::respond:
        outcome = std::to_string(d.status) + (code.empty() ? "" : " " + code);
        break;
      case Decision::Action::timeout:
        outcome = "timeout";
        break;
      case Decision::Action::reset:
        outcome = "reset";
        break;
      case Decision::Action::close:
        outcome = "stale_close";
        break;
      case Decision::Action::garbage:
        outcome = "malformed_http";
        break;
    }
    if (d.action == Decision::Action::respond && !fault_name.empty() && d.status < 400) outcome += " " + fault_name;
    auto& cs = callers[caller];
    // Reads are counted apart, so that a set call's figures mean what they meant before reads.
    ++(is_read ? cs.reads : cs.requests);
    ++(is_read ? cs.read_outcomes : cs.outcomes)[outcome];
    if (address_stats) {
      ++address_stats->requests;
      ++address_stats->outcomes[outcome];
    }
    if (record.is_open()) {
      nlohmann::ordered_json line{{"time", utc_rfc3339(now_sys)},
                                  {"seq", seq},
                                  {"request_id", d.request_id},
                                  {"method", std::string(req.method_string())},
                                  {"read", is_read},
                                  {"caller", caller},
                                  {"sub_merchant", sub_merchant},
                                  {"status", d.action == Decision::Action::respond ? d.status : 0},
                                  {"code", code},
                                  {"signature_verified", signature_verified},
                                  {"fault", fault_name},
                                  {"user_agent", short_id(std::string_view(req[bhttp::field::user_agent].data(),
                                                                           req[bhttp::field::user_agent].size()))},
                                  {"reused_connection", reused_connection}};
      record << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
      record.flush();
    }
    return d;
  }

  std::string stats_json_locked() const {
    nlohmann::ordered_json j;
    j["requests_total"] = request_seq;
    j["connections_accepted"] = connections;
    j["concurrent_same_sub_merchant"] = overlapping;
    j["limits"] = {
        {"window_1s", limits.window_1s}, {"window_60s", limits.window_60s}, {"get_per_second", limits.get_per_second}};
    if (limits.per_source_address_per_minute) {
      const auto w = limits_from_rate(*limits.per_source_address_per_minute);
      j["limits"]["per_source_address"] = {{"window_1s", w.per_1s}, {"window_60s", w.per_60s}};
    }
    j["out_of_band_sets"] = out_of_band_sets;
    nlohmann::ordered_json by_caller = nlohmann::ordered_json::object();
    for (const auto& [caller, cs] : callers) {
      nlohmann::ordered_json c;
      c["requests"] = cs.requests;
      c["certificate_downloads"] = cs.certificate_downloads;
      c["max_in_1s"] = cs.peaks.max_1s();
      c["max_in_60s"] = cs.peaks.max_60s();
      c["outcomes"] = cs.outcomes;
      c["reads"] = cs.reads;
      c["reads_max_in_1s"] = cs.read_peaks.max_1s();
      c["read_outcomes"] = cs.read_outcomes;
      by_caller[caller] = c;
    }
    j["callers"] = by_caller;
    nlohmann::ordered_json by_address = nlohmann::ordered_json::object();
    for (const auto& [address, as] : addresses) {
      nlohmann::ordered_json a;
      a["requests"] = as.requests;
      a["max_in_1s"] = as.peaks.max_1s();
      a["max_in_60s"] = as.peaks.max_60s();
      a["outcomes"] = as.outcomes;
      by_address[address] = a;
    }
    j["source_addresses"] = by_address;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  // decide() calls this without holding `mu`; external callers go through SandboxServer.
  std::string stats_json() const {
    std::lock_guard lock(mu);
    return stats_json_locked();
  }

  void apply(const RuntimeUpdate& u) {
    std::lock_guard lock(mu);
    if (u.limits) {
      limits = *u.limits;
      for (auto& [caller, limiter] : limiters) limiter.set_limits(limits.window_1s, limits.window_60s);
      // A changed per-address limit applies to the windows already counted; none: forget them.
      if (!limits.per_source_address_per_minute) address_limiters.clear();
      const auto w = limits_from_rate(limits.per_source_address_per_minute.value_or(1));
      for (auto& [address, limiter] : address_limiters) limiter.set_limits(w.per_1s, w.per_60s);
      for (auto& [caller, limiter] : read_limiters)
        limiter.set_limits(limits.get_per_second, limits.get_per_second * 60);
    }
    if (u.faults) faults = *u.faults;
  }

  void stop() {
    if (!io.stopped()) {
      asio::post(io, [this] {
        error_code ignored;
        acceptor.close(ignored);
      });
      io.stop();
    }
    if (thread.joinable()) thread.join();
  }
};

SandboxServer::SandboxServer(SandboxConfig config) : impl_(std::make_unique<Impl>(std::move(config))) { impl_->load(); }

SandboxServer::~SandboxServer() { stop(); }

std::uint16_t SandboxServer::start() {
  impl_->bind();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
  return impl_->bound_port;
}

void SandboxServer::stop() { impl_->stop(); }

std::uint16_t SandboxServer::port() const { return impl_->bound_port; }

std::string SandboxServer::stats_json() const { return impl_->stats_json(); }

void SandboxServer::apply(const RuntimeUpdate& update) { impl_->apply(update); }

int SandboxServer::run_until_signalled(const std::string& config_path) {
  impl_->bind();
  std::cout << "callbackd-sandbox listening on https://" << impl_->config.listen_address << ":" << impl_->bound_port
            << std::endl;
  asio::signal_set signals(impl_->io, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const error_code&, int)> on_signal = [&](const error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      // Like PgBouncer: a bad file on reload is reported and the old settings stay.
      try {
        const SandboxConfig fresh = load_sandbox_config(config_path);
        impl_->apply(RuntimeUpdate{fresh.limits, fresh.faults});
        std::cerr << "callbackd-sandbox: reloaded limits and faults from " << config_path << std::endl;
      } catch (const StartupError& e) {
        std::cerr << "callbackd-sandbox: reload refused, keeping the old settings:\n" << e.what() << std::endl;
      }
      signals.async_wait(on_signal);
      return;
    }
    error_code ignored;
    impl_->acceptor.close(ignored);
    impl_->io.stop();
  };
  signals.async_wait(on_signal);
  impl_->io.run();
  return 0;
}

}  // namespace callbackd::sandbox
