#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include <cerrno>
#include <cstring>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/host_scope.h"
#include "core/yaml_reader.h"

namespace callbackd {

std::optional<std::string> process_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

namespace {

// One section of the file: its key path prefix and the keys it accepts, in documentation order.
struct Section {
  std::string name;  // "" for the top level
  std::vector<std::string> keys;
};

const std::vector<Section>& sections() {
  static const std::vector<Section> s = {
      {"", {"database", "wechatpay", "credentials_dir", "reconciler", "metrics", "log"}},
      {"database", {"url", "connect_timeout"}},
      {"wechatpay",
       {"base_url", "backup_url", "ca_file", "platform_ca_file", "connect_timeout", "request_timeout", "idle_timeout",
        "max_connections_per_host", "max_response_bytes", "egress_rate_per_minute", "source_addresses",
        "read_rate_per_second"}},
      {"reconciler",
       {"poll_interval", "resync_interval", "global_rate_per_second", "max_in_flight_per_tenant",
        "retry_initial_backoff", "retry_max_backoff", "tenant_probe_interval", "shutdown_grace",
        "drift_check_interval"}},
      {"metrics", {"listen"}},
      {"log", {"level", "format"}},
  };
  return s;
}

const Section& section(const std::string& name) {
  for (const auto& s : sections())
    if (s.name == name) return s;
  CALLBACKD_ASSERT(!"unknown config section");
  return sections().front();
}

using yaml_reader::Reader;
using yaml_reader::set;

// wechatpay.source_addresses: IP literals (v4 or v6), each once. Whether this host has them
// is checked when the client binds them at start-up (http::HttpsClient), not here: check-config
// may run on another machine.
std::vector<std::string> source_addresses(Reader& r, const YAML::Node& node, const std::string& path) {
  std::vector<std::string> out;
  r.list(node, path, "a list of local IP addresses", [&](const YAML::Node& item, const std::string& p) {
    auto text = r.string(item, p);
    if (!text) return;
    unsigned char buf[sizeof(in6_addr)];
    if (inet_pton(AF_INET, text->c_str(), buf) != 1 && inet_pton(AF_INET6, text->c_str(), buf) != 1) {
      r.problem(p, "'" + *text + "' is not an IP address",
                "write a local address of this host as digits, like 203.0.113.7 or 2001:db8::7 (no name, no port)");
      return;
    }
    if (std::find(out.begin(), out.end(), *text) != out.end()) {
      r.problem(p, "'" + *text + "' is listed twice", "list each source address once");
      return;
    }
    out.push_back(*text);
  });
  return out;
}

// The https URLs of wechatpay: a host and optional port and nothing else; "" only if allowed.
std::optional<std::string> https_base_url(Reader& r, const YAML::Node& node, const std::string& path,
                                          Reader::Empty empty) {
  auto s = r.string(node, path, empty);
  if (!s || s->empty()) return s;
  const std::string scheme = "https://";
  const bool https = s->starts_with(scheme);
  const std::string rest = https ? s->substr(scheme.size()) : "";
  if (!https || rest.empty() || rest.find_first_of("/?#@ \t") != std::string::npos || !parse_https_url(*s)) {
    r.problem(path, "expected an https URL with a host and optional port and nothing else, found '" + *s + "'",
              "write it like https://api.mch.weixin.qq.com (TLS is always on)");
    return std::nullopt;
  }
  return s;
}

void check_listen_address(Reader& r, const std::string& path, const std::string& s) {
  if (s.empty()) return;  // metrics off
  const auto colon = s.rfind(':');
  const std::string host = colon == std::string::npos ? "" : s.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : s.substr(colon + 1);
  int p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (host.empty() || port.empty() || ec != std::errc() || end != port.data() + port.size() || p < 1 || p > 65535) {
    r.problem(path, "expected HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, found '" + s + "'",
              "set an address and port, or \"\" to turn the metrics server off");
  }
}

// Failover sends the same signed request to wechatpay.backup_url whenever base_url cannot be
// connected. A rehearsal (base_url on this host or a private network: a callbackd-sandbox)
// whose backup is production would send real requests to WeChat Pay the moment its sandbox is
// down; so the backup defaults to production's only when base_url is production's, and a
// local base_url with a production backup is refused rather than guessed at.
void settle_backup_url(Reader& r, WechatpayConfig& w, bool backup_given) {
  const auto base = parse_https_url(w.base_url);
  if (!base) return;  // reported as a bad base_url
  if (!backup_given) {
    // Production's own host (api2.wechatpay.cn as base_url would fail over to itself).
    if (base->port == 443 && is_wechatpay_production_host(base->host) &&
        !same_host(base->host, parse_https_url(kWechatpayBackupUrl)->host))
      w.backup_url = kWechatpayBackupUrl;
    return;
  }
  const auto backup = parse_https_url(w.backup_url);
  const HostScope scope = host_scope(base->host);
  if (!backup || scope == HostScope::anywhere || !is_wechatpay_production_host(backup->host)) return;
  r.problem("wechatpay.backup_url",
            "is WeChat Pay's production host (" + w.backup_url + ") while wechatpay.base_url (" + w.base_url +
                ") is a " + std::string(to_string(scope)) +
                " address: this rehearsal would send real signed requests to production whenever its sandbox is down",
            "set wechatpay.backup_url: \"\" (or a second sandbox's URL) to rehearse, or set wechatpay.base_url: " +
                std::string(kWechatpayBaseUrl) + " to run against production");
}

}  // namespace

const std::vector<std::string>& known_config_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> out;
    for (const auto& sec : sections())
      for (const auto& k : sec.keys) {
        const std::string path = sec.name.empty() ? k : sec.name + "." + k;
        // Sections themselves are not settings; only their leaves are.
        bool is_section = false;
        for (const auto& s2 : sections()) is_section = is_section || s2.name == path;
        if (!is_section) out.push_back(path);
      }
    return out;
  }();
  return keys;
}

Config parse_config(const std::string& yaml_text, const std::string& source_name, EnvLookup env) {
  using Empty = Reader::Empty;
  Config c;
  c.source_path = source_name;
  Reader r(source_name, "config/callbackd.example.yaml");
  const YAML::Node root = yaml_reader::load(yaml_text, source_name);

  bool have_url = false;
  bool backup_given = false;
  if (root.IsNull()) {
    // An empty file: every key has its default, and the required ones are reported below.
  } else {
    r.map(root, "", section("").keys, [&](const std::string& key, const YAML::Node& v, const std::string& path) {
      if (key == "credentials_dir") {
        set(c.credentials_dir, r.string(v, path));
        if (!c.credentials_dir.empty() && c.credentials_dir.front() != '/')
          r.problem(path, "must be an absolute path, found '" + c.credentials_dir + "'");
        return;
      }
      r.map(v, key, section(key).keys, [&](const std::string& k, const YAML::Node& x, const std::string& p) {
        if (key == "database") {
          if (k == "url") {
            have_url = true;  // a bad value is reported as such, not also as missing
            set(c.database.url, r.string(x, p));
          } else if (k == "connect_timeout")
            set(c.database.connect_timeout, r.duration(x, p, Millis{100}, Millis{600'000}));
        } else if (key == "wechatpay") {
          auto& w = c.wechatpay;
          if (k == "base_url")
            set(w.base_url, https_base_url(r, x, p, Empty::refused));
          else if (k == "backup_url") {
            backup_given = true;
            set(w.backup_url, https_base_url(r, x, p, Empty::allowed));
          } else if (k == "ca_file")
            set(w.ca_file, r.string(x, p));
          else if (k == "platform_ca_file") {
            set(w.platform_ca_file, r.string(x, p, Empty::allowed));
            if (w.platform_ca_file && w.platform_ca_file->empty()) w.platform_ca_file.reset();  // "": no chain check
          } else if (k == "connect_timeout")
            set(w.connect_timeout, r.duration(x, p, Millis{10}, Millis{600'000}));
          else if (k == "request_timeout")
            set(w.request_timeout, r.duration(x, p, Millis{10}, Millis{600'000}));
          else if (k == "idle_timeout")
            set(w.idle_timeout, r.duration(x, p, Millis{100}, Millis{3'600'000}));
          else if (k == "max_connections_per_host")
            set(w.max_connections_per_host, r.integer<std::size_t>(x, p, 1, 1024));
          else if (k == "max_response_bytes")
            set(w.max_response_bytes, r.integer<std::size_t>(x, p, 1024, 16 * 1024 * 1024));
          else if (k == "egress_rate_per_minute") {
            if (auto rate = r.integer<int>(x, p, 0, 1'000'000))
              w.egress_rate_per_minute = *rate == 0 ? std::nullopt : std::optional<int>(*rate);  // 0: no cap
          } else if (k == "source_addresses")
            w.source_addresses = source_addresses(r, x, p);
          else if (k == "read_rate_per_second")  // WeChat Pay documents 2000 QPS for the read call
            set(w.read_rate_per_second, r.number(x, p, 1, 2000));
        } else if (key == "reconciler") {
          auto& rc = c.reconciler;
          if (k == "poll_interval")
            set(rc.poll_interval, r.duration(x, p, Millis{100}, Millis{3'600'000}));
          else if (k == "resync_interval")
            set(rc.resync_interval, r.duration(x, p, Millis{60'000}, Millis{365LL * 86'400'000}, Reader::Zero::off));
          else if (k == "global_rate_per_second")
            set(rc.global_rate_per_second, r.number(x, p, 0, 1e6));
          else if (k == "max_in_flight_per_tenant")
            set(rc.max_in_flight_per_tenant, r.integer<int>(x, p, 1, 256));
          else if (k == "retry_initial_backoff")
            set(rc.retry_initial_backoff, r.duration(x, p, Millis{10}, Millis{3'600'000}));
          else if (k == "retry_max_backoff")
            set(rc.retry_max_backoff, r.duration(x, p, Millis{10}, Millis{86'400'000}));
          else if (k == "tenant_probe_interval")
            set(rc.tenant_probe_interval, r.duration(x, p, Millis{1'000}, Millis{86'400'000}));
          else if (k == "shutdown_grace")
            set(rc.shutdown_grace, r.duration(x, p, Millis{0}, Millis{600'000}));
          else if (k == "drift_check_interval")
            set(rc.drift_check_interval,
                r.duration(x, p, Millis{1'000}, Millis{365LL * 86'400'000}, Reader::Zero::off));
        } else if (key == "metrics") {
          if (k == "listen")
            if (auto listen = r.string(x, p, Empty::allowed)) {
              c.metrics.listen = *listen;
              check_listen_address(r, p, c.metrics.listen);
            }
        } else if (key == "log") {
          if (k == "level")
            set(c.log.level, r.one_of(x, p, {"trace", "debug", "info", "warn", "error", "critical", "off"}));
          else if (k == "format")
            if (auto format = r.one_of(x, p, {"logfmt", "json"}))
              c.log.format = *format == "json" ? LogConfig::Format::json : LogConfig::Format::logfmt;
        }
      });
    });
  }

  settle_backup_url(r, c.wechatpay, backup_given);
  if (c.reconciler.retry_max_backoff < c.reconciler.retry_initial_backoff)
    r.problem("reconciler.retry_max_backoff", "must not be shorter than reconciler.retry_initial_backoff");

  if (auto url = env("CALLBACKD_DATABASE_URL")) {
    c.database.url = *url;  // the environment wins, so a unit file can point elsewhere without editing YAML
  } else if (!have_url && c.database.url.empty()) {
    r.problem("database.url", "is required",
              "set database.url to a libpq conninfo or URI such as postgresql://callbackd@localhost/callbackd, "
              "or set CALLBACKD_DATABASE_URL");
  }
  if (c.credentials_dir.empty())
    if (auto dir = env("CREDENTIALS_DIRECTORY")) c.credentials_dir = *dir;

  r.throw_if_any();
  return c;
}

Config load_config(const std::string& path, EnvLookup env) {
  // An ifstream opens a directory and reads it as empty, which would report "database.url is
  // required" about the wrong thing; a FIFO would block start-up.
  std::error_code ec;
  const auto type = std::filesystem::status(path, ec).type();
  if (!ec && type != std::filesystem::file_type::regular)
    throw StartupError(Problem{
        path,
        type == std::filesystem::file_type::directory ? "is a directory, not a config file" : "is not a regular file",
        "pass --config FILE with the path of the YAML file"});
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw StartupError(Problem{path, "cannot read the config file: " + std::string(std::strerror(err)),
                               "create it (see config/callbackd.example.yaml) or pass --config FILE"});
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_config(buf.str(), path, env);
}

}  // namespace callbackd
