#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
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
       {"base_url", "backup_url", "ca_file", "connect_timeout", "request_timeout", "idle_timeout",
        "max_connections_per_host", "max_response_bytes"}},
      {"reconciler",
       {"poll_interval", "resync_interval", "global_rate_per_second", "max_in_flight_per_tenant",
        "retry_initial_backoff", "retry_max_backoff", "tenant_probe_interval", "shutdown_grace"}},
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

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an undefined value";
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

// Walks the document, collecting every problem instead of stopping at the first.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  void problem(const std::string& path, std::string what, std::string fix = "") {
    problems_.push_back({path.empty() ? source_ : source_ + ": " + path, std::move(what), std::move(fix)});
  }
  const std::vector<Problem>& problems() const { return problems_; }

  // Reports keys the section does not know (and duplicates, which YAML libraries keep silently)
  // and calls `on_key` for each known one that is present.
  void map(
      const YAML::Node& node, const std::string& section_name,
      const std::function<void(const std::string& key, const YAML::Node& value, const std::string& path)>& on_key) {
    const Section& sec = section(section_name);
    if (!node.IsMap()) {
      problem(section_name, "expected a map of settings, found " + describe(node),
              "write it as '" + (section_name.empty() ? std::string("database:") : section_name + ":") +
                  "' followed by indented 'key: value' lines");
      return;
    }
    yaml_reader::MapKeys keys;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) {
        problem(section_name, "a key must be a plain name, found " + describe(kv.first));
        continue;
      }
      const std::string key = kv.first.Scalar();
      const std::string path = section_name.empty() ? key : section_name + "." + key;
      if (auto repeated = keys.repeated(key, kv.first)) {
        problem(path, std::move(*repeated), "keep one of them");
        continue;
      }
      if (std::find(sec.keys.begin(), sec.keys.end(), key) == sec.keys.end()) {
        problem(path, "unknown key",
                "the keys accepted " +
                    std::string(section_name.empty() ? "at the top level" : "in '" + section_name + "'") +
                    " are: " + join(sec.keys) + " (see config/callbackd.example.yaml)");
        continue;
      }
      on_key(key, kv.second, path);
    }
  }

  bool string(const YAML::Node& node, const std::string& path, std::string& out, bool allow_empty = false) {
    if (!node.IsScalar()) {
      problem(path, "expected a string, found " + describe(node));
      return false;
    }
    if (!allow_empty && node.Scalar().empty()) {
      problem(path, "must not be empty");
      return false;
    }
    out = node.Scalar();
    return true;
  }

  template <class Int>
  void integer(const YAML::Node& node, const std::string& path, Int& out, long long min, long long max) {
    long long v = 0;
    const std::string s = node.IsScalar() ? node.Scalar() : "";
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!node.IsScalar() || s.empty() || ec != std::errc() || end != s.data() + s.size()) {
      problem(path, "expected a whole number, found " + describe(node));
      return;
    }
    if (v < min || v > max) {
      problem(path, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", found " + s);
      return;
    }
    out = static_cast<Int>(v);
  }

  void number(const YAML::Node& node, const std::string& path, double& out, double min, double max) {
    const std::string s = node.IsScalar() ? node.Scalar() : "";
    char* end = nullptr;
    errno = 0;
    double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
    if (!node.IsScalar() || s.empty() || errno != 0 || end != s.c_str() + s.size() || v != v) {
      problem(path, "expected a number, found " + describe(node));
      return;
    }
    if (v < min || v > max) {
      std::ostringstream m;
      m << "must be between " << min << " and " << max << ", found " << s;
      problem(path, m.str());
      return;
    }
    out = v;
  }

  // Durations carry their unit ("250ms", "10s", "5m", "1h"); a bare number is refused because
  // nobody can tell whether 10 meant seconds or milliseconds. "0" is accepted where 0 means off.
  void duration(const YAML::Node& node, const std::string& path, Millis& out, Millis min, Millis max,
                bool zero_means_off = false) {
    const std::string s = node.IsScalar() ? node.Scalar() : "";
    const std::string expected = "expected a duration with a unit such as 500ms, 10s, 5m or 1h";
    if (zero_means_off && s == "0") {
      out = Millis{0};
      return;
    }
    long long v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    const std::string unit(end, s.data() + s.size());
    static const std::map<std::string, long long> factors = {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
    auto f = factors.find(unit);
    if (!node.IsScalar() || s.empty() || ec != std::errc() || end == s.data() || f == factors.end() || v < 0) {
      problem(path, expected + (zero_means_off ? " (or 0 for off)" : "") + ", found " + describe(node));
      return;
    }
    Millis d{v * f->second};
    if (!(zero_means_off && d.count() == 0) && (d < min || d > max)) {
      problem(path, "must be between " + std::to_string(min.count()) + "ms and " + std::to_string(max.count()) + "ms" +
                        (zero_means_off ? " (or 0 for off)" : "") + ", found " + s);
      return;
    }
    out = d;
  }

  void https_base_url(const YAML::Node& node, const std::string& path, std::string& out, bool allow_empty) {
    std::string s;
    if (!string(node, path, s, allow_empty)) return;
    if (s.empty()) {
      out.clear();
      return;
    }
    const std::string scheme = "https://";
    const bool https = s.starts_with(scheme);
    const std::string rest = https ? s.substr(scheme.size()) : "";
    if (!https || rest.empty() || rest.find_first_of("/?#@ \t") != std::string::npos || !parse_https_url(s)) {
      problem(path, "expected an https URL with a host and optional port and nothing else, found '" + s + "'",
              "write it like https://api.mch.weixin.qq.com (TLS is always on)");
      return;
    }
    out = s;
  }

 private:
  std::string source_;
  std::vector<Problem> problems_;
};

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
  Config c;
  c.source_path = source_name;
  Reader r(source_name);
  const YAML::Node root = yaml_reader::load(yaml_text, source_name);

  bool have_url = false;
  bool backup_given = false;
  if (root.IsNull()) {
    // An empty file: every key has its default, and the required ones are reported below.
  } else {
    r.map(root, "", [&](const std::string& key, const YAML::Node& v, const std::string& path) {
      if (key == "credentials_dir") {
        if (r.string(v, path, c.credentials_dir) && c.credentials_dir.front() != '/')
          r.problem(path, "must be an absolute path, found '" + c.credentials_dir + "'");
        return;
      }
      r.map(v, key, [&](const std::string& k, const YAML::Node& x, const std::string& p) {
        if (key == "database") {
          if (k == "url") {
            have_url = true;  // a bad value is reported as such, not also as missing
            r.string(x, p, c.database.url);
          } else if (k == "connect_timeout")
            r.duration(x, p, c.database.connect_timeout, Millis{100}, Millis{600'000});
        } else if (key == "wechatpay") {
          auto& w = c.wechatpay;
          if (k == "base_url")
            r.https_base_url(x, p, w.base_url, false);
          else if (k == "backup_url") {
            backup_given = true;
            r.https_base_url(x, p, w.backup_url, true);
          } else if (k == "ca_file") {
            std::string s;
            if (r.string(x, p, s)) w.ca_file = s;
          } else if (k == "connect_timeout")
            r.duration(x, p, w.connect_timeout, Millis{10}, Millis{600'000});
          else if (k == "request_timeout")
            r.duration(x, p, w.request_timeout, Millis{10}, Millis{600'000});
          else if (k == "idle_timeout")
            r.duration(x, p, w.idle_timeout, Millis{100}, Millis{3'600'000});
          else if (k == "max_connections_per_host")
            r.integer(x, p, w.max_connections_per_host, 1, 1024);
          else if (k == "max_response_bytes")
            r.integer(x, p, w.max_response_bytes, 1024, 16 * 1024 * 1024);
        } else if (key == "reconciler") {
          auto& rc = c.reconciler;
          if (k == "poll_interval")
            r.duration(x, p, rc.poll_interval, Millis{100}, Millis{3'600'000});
          else if (k == "resync_interval")
            r.duration(x, p, rc.resync_interval, Millis{60'000}, Millis{365LL * 86'400'000}, true);
          else if (k == "global_rate_per_second")
            r.number(x, p, rc.global_rate_per_second, 0, 1e6);
          else if (k == "max_in_flight_per_tenant")
            r.integer(x, p, rc.max_in_flight_per_tenant, 1, 256);
          else if (k == "retry_initial_backoff")
            r.duration(x, p, rc.retry_initial_backoff, Millis{10}, Millis{3'600'000});
          else if (k == "retry_max_backoff")
            r.duration(x, p, rc.retry_max_backoff, Millis{10}, Millis{86'400'000});
          else if (k == "tenant_probe_interval")
            r.duration(x, p, rc.tenant_probe_interval, Millis{1'000}, Millis{86'400'000});
          else if (k == "shutdown_grace")
            r.duration(x, p, rc.shutdown_grace, Millis{0}, Millis{600'000});
        } else if (key == "metrics") {
          if (k == "listen" && r.string(x, p, c.metrics.listen, true)) check_listen_address(r, p, c.metrics.listen);
        } else if (key == "log") {
          if (k == "level") {
            static const std::vector<std::string> levels = {"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};
            std::string s;
            if (r.string(x, p, s)) {
              if (std::find(levels.begin(), levels.end(), s) == levels.end())
                r.problem(p, "expected one of " + join(levels) + ", found '" + s + "'");
              else
                c.log.level = s;
            }
          } else if (k == "format") {
            std::string s;
            if (r.string(x, p, s)) {
              if (s == "logfmt")
                c.log.format = LogConfig::Format::logfmt;
              else if (s == "json")
                c.log.format = LogConfig::Format::json;
              else
                r.problem(p, "expected logfmt or json, found '" + s + "'");
            }
          }
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

  if (!r.problems().empty()) throw StartupError(r.problems());
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
