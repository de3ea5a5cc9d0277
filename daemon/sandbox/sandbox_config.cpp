#include "sandbox/sandbox_config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/host_scope.h"
#include "core/yaml_reader.h"
#include "sandbox/rate_window.h"

namespace callbackd::sandbox {

namespace {

// Collects problems instead of stopping at the first one.
struct Reader {
  std::string source;
  std::vector<Problem> problems;

  void fail(const std::string& path, const std::string& what, const std::string& fix = "") {
    problems.push_back({source + ": " + path, what, fix});
  }

  void map(const YAML::Node& node, const std::string& path, const std::set<std::string>& known,
           const std::function<void(const std::string&, const YAML::Node&, const std::string&)>& on_key) {
    if (!node.IsMap()) {
      fail(path, "expected a map");
      return;
    }
    yaml_reader::MapKeys keys;
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>("");
      const std::string sub = path.empty() ? key : path + "." + key;
      if (auto repeated = keys.repeated(key, kv.first)) {
        fail(sub, *repeated, "keep one of them");
        continue;
      }
      if (!known.count(key)) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        fail(sub, "unknown key", "known keys here: " + list);
        continue;
      }
      on_key(key, kv.second, sub);
    }
  }
  std::string str(const YAML::Node& n, const std::string& path) {
    if (!n.IsScalar() || n.Scalar().empty()) {
      fail(path, "expected a non-empty string");
      return {};
    }
    return n.Scalar();
  }
  template <class Int>
  Int integer(const YAML::Node& n, const std::string& path, long long min, long long max) {
    long long v = 0;
    if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v) || v < min || v > max) {
      fail(path, "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
      return static_cast<Int>(min);
    }
    return static_cast<Int>(v);
  }
  double probability(const YAML::Node& n, const std::string& path) {
    double v = 0;
    if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !(v >= 0 && v <= 1)) {
      fail(path, "expected a probability from 0 to 1");
      return 0;
    }
    return v;
  }
};

std::string resolve_path(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p.front() == '/' || base_dir.empty()) return p;
  return (std::filesystem::path(base_dir) / p).string();
}

FaultRule parse_rule(Reader& r, const YAML::Node& node, const std::string& path, bool random) {
  FaultRule rule;
  std::set<std::string> known{"kind",         "code",       "status", "message",    "delay_ms",
                              "skew_seconds", "size_bytes", "body",   "update_time"};
  if (random) known.insert("probability");
  bool has_kind = false;
  r.map(node, path, known, [&](const std::string& key, const YAML::Node& v, const std::string& p) {
    if (key == "kind") {
      has_kind = true;
      auto k = fault_kind_from_string(r.str(v, p));
      if (!k)
        r.fail(
            p, "unknown fault kind",
            "one of error, delay, timeout, reset, malformed_body, bad_signature, unknown_serial, clock_skew, update_time_skew, stale_close, oversized_body, malformed_http, proxy_answer, odd_update_time");
      else
        rule.kind = *k;
    } else if (key == "code") {
      rule.code = r.str(v, p);
    } else if (key == "status") {
      rule.status = r.integer<int>(v, p, 400, 599);
    } else if (key == "message") {
      rule.message = r.str(v, p);
    } else if (key == "delay_ms") {
      rule.delay = std::chrono::milliseconds(r.integer<long long>(v, p, 0, 600'000));
    } else if (key == "skew_seconds") {
      rule.skew = std::chrono::seconds(r.integer<long long>(v, p, -86'400, 86'400));
    } else if (key == "size_bytes") {
      rule.size_bytes = r.integer<std::size_t>(v, p, 0, 64LL * 1024 * 1024);
    } else if (key == "body") {
      const std::string body = r.str(v, p);
      if (body == "empty")
        rule.empty_body = true;
      else if (body != "html")
        r.fail(p, "unknown body '" + body + "'", "html (a proxy's error page) or empty");
    } else if (key == "update_time") {
      rule.update_time = r.str(v, p);
    } else if (key == "probability") {
      rule.probability = r.probability(v, p);
    }
  });
  if (!node.IsMap()) return rule;
  if (!has_kind) r.fail(path + ".kind", "missing", "name the fault kind");
  if (rule.kind == FaultKind::error) {
    if (rule.code.empty())
      r.fail(path + ".code", "an error fault needs a code", "e.g. NOT_ENOUGH, SYSTEM_ERROR");
    else if (!error_code_info(rule.code) && rule.status == 0)
      r.fail(path + ".code", "'" + rule.code + "' is not a documented code",
             "use one of the seed table, SIGN_ERROR, SYSTEM_ERROR, or give a status");
  }
  return rule;
}

Limits parse_limits(Reader& r, const YAML::Node& node, const std::string& path) {
  Limits l;
  std::optional<std::size_t> w1, w60;
  r.map(node, path,
        {"set_per_minute", "window_1s", "window_60s", "max_body_bytes", "idle_timeout_ms", "timeout_hold_ms"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "set_per_minute")
            l.set_per_minute = r.integer<std::uint32_t>(v, p, 1, 10'000'000);
          else if (key == "window_1s")
            w1 = r.integer<std::size_t>(v, p, 1, 10'000'000);
          else if (key == "window_60s")
            w60 = r.integer<std::size_t>(v, p, 1, 100'000'000);
          else if (key == "max_body_bytes")
            l.max_body_bytes = r.integer<std::size_t>(v, p, 64, 16 * 1024 * 1024);
          else if (key == "idle_timeout_ms")
            l.idle_timeout = std::chrono::milliseconds(r.integer<long long>(v, p, 10, 3'600'000));
          else if (key == "timeout_hold_ms")
            l.timeout_hold = std::chrono::milliseconds(r.integer<long long>(v, p, 0, 3'600'000));
        });
  const auto derived = limits_from_rate(l.set_per_minute);
  l.window_1s = w1.value_or(derived.per_1s);
  l.window_60s = w60.value_or(derived.per_60s);
  return l;
}

FaultPlan parse_faults(Reader& r, const YAML::Node& node, const std::string& path) {
  FaultPlan plan;
  r.map(node, path, {"seed", "sub_merchants", "random"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "seed") {
            plan.seed = r.integer<std::uint64_t>(v, p, 0, 9'000'000'000'000'000'000LL);
          } else if (key == "sub_merchants") {
            if (!v.IsMap()) return r.fail(p, "expected a map of sub-merchant mchid to fault");
            for (const auto& kv : v) {
              const std::string mchid = kv.first.as<std::string>("");
              plan.by_sub_merchant[mchid] = parse_rule(r, kv.second, p + "." + mchid, false);
            }
          } else if (key == "random") {
            if (!v.IsSequence()) return r.fail(p, "expected a list of faults with a probability each");
            double total = 0;
            for (std::size_t i = 0; i < v.size(); ++i) {
              plan.random.push_back(parse_rule(r, v[i], p + "[" + std::to_string(i) + "]", true));
              total += plan.random.back().probability;
            }
            if (total > 1.0 + 1e-9) r.fail(p, "probabilities add up to more than 1");
          }
        });
  return plan;
}

}  // namespace

SandboxConfig parse_sandbox_config(const std::string& yaml_text, const std::string& source,
                                   const std::string& base_dir) {
  Reader r{source, {}};
  SandboxConfig c;
  c.source = source;
  const YAML::Node root = yaml_reader::load(yaml_text, source);
  bool has_tls = false, has_platform = false;
  r.map(root, "", {"listen", "port_file", "tls", "platform", "merchants", "limits", "faults", "record_file"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "listen") {
            const std::string s = r.str(v, p);
            const auto colon = s.rfind(':');
            if (colon == std::string::npos)
              return r.fail(p, "expected ADDRESS:PORT", "e.g. 127.0.0.1:0 (0 = any free port)");
            c.listen_address = s.substr(0, colon);
            if (c.listen_address.size() > 2 && c.listen_address.front() == '[')
              c.listen_address = c.listen_address.substr(1, c.listen_address.size() - 2);
            c.port = r.integer<std::uint16_t>(YAML::Node(s.substr(colon + 1)), p, 0, 65535);
          } else if (key == "port_file") {
            c.port_file = resolve_path(base_dir, r.str(v, p));
          } else if (key == "record_file") {
            c.record_file = resolve_path(base_dir, r.str(v, p));
          } else if (key == "tls") {
            has_tls = true;
            r.map(v, p, {"certificate_file", "private_key_file"},
                  [&](const std::string& k, const YAML::Node& vv, const std::string& pp) {
                    (k == "certificate_file" ? c.tls_certificate_file : c.tls_private_key_file) =
                        resolve_path(base_dir, r.str(vv, pp));
                  });
          } else if (key == "platform") {
            has_platform = true;
            r.map(v, p, {"key_id", "private_key_file", "certificate_file"},
                  [&](const std::string& k, const YAML::Node& vv, const std::string& pp) {
                    if (k == "key_id")
                      c.platform.key_id = r.str(vv, pp);
                    else if (k == "private_key_file")
                      c.platform.private_key_file = resolve_path(base_dir, r.str(vv, pp));
                    else
                      c.platform.certificate_file = resolve_path(base_dir, r.str(vv, pp));
                  });
          } else if (key == "merchants") {
            if (!v.IsSequence()) return r.fail(p, "expected a list of merchants");
            for (std::size_t i = 0; i < v.size(); ++i) {
              RegisteredMerchant m;
              const std::string mp = p + "[" + std::to_string(i) + "]";
              r.map(v[i], mp, {"mchid", "serial_no", "public_key_file"},
                    [&](const std::string& k, const YAML::Node& vv, const std::string& pp) {
                      if (k == "mchid")
                        m.caller_mchid = r.str(vv, pp);
                      else if (k == "serial_no")
                        m.serial_no = r.str(vv, pp);
                      else
                        m.public_key_file = resolve_path(base_dir, r.str(vv, pp));
                    });
              if (m.caller_mchid.empty() || m.serial_no.empty() || m.public_key_file.empty())
                r.fail(mp, "a merchant needs mchid, serial_no and public_key_file");
              c.merchants.push_back(std::move(m));
            }
          } else if (key == "limits") {
            c.limits = parse_limits(r, v, p);
          } else if (key == "faults") {
            c.faults = parse_faults(r, v, p);
          }
        });
  if (root.IsMap()) {
    if (!has_tls || c.tls_certificate_file.empty() || c.tls_private_key_file.empty())
      r.fail("tls", "certificate_file and private_key_file are required", "run scripts/sandbox-keys DIR to make them");
    if (!has_platform || c.platform.private_key_file.empty())
      r.fail("platform.private_key_file", "required (the key that signs responses)",
             "run scripts/sandbox-keys DIR to make one");
    if (has_platform && c.platform.key_id.empty() && !c.platform.certificate_file)
      r.fail("platform.key_id", "required in public-key mode", "PUB_KEY_ID_... as written by scripts/sandbox-keys");
  }
  if (!r.problems.empty()) throw StartupError(std::move(r.problems));
  return c;
}

std::optional<Problem> remote_listen_problem(const SandboxConfig& config) {
  if (config.allow_remote || binds_loopback_only(config.listen_address)) return std::nullopt;
  const bool v6 = config.listen_address.find(':') != std::string::npos;
  const std::string address =
      (v6 ? "[" + config.listen_address + "]" : config.listen_address) + ":" + std::to_string(config.port);
  return Problem{config.source + ": listen",
                 address +
                     " is not a loopback address: other hosts could reach the sandbox, whose /sandbox/config and "
                     "/sandbox/stats endpoints are unauthenticated (anyone could change its faults and limits)",
                 "listen on 127.0.0.1 or [::1], or pass --allow-remote to serve other hosts on purpose"};
}

SandboxConfig load_sandbox_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw StartupError(Problem{path, "cannot read the sandbox config", "check the path"});
  std::ostringstream text;
  text << in.rdbuf();
  return parse_sandbox_config(text.str(), path, std::filesystem::path(path).parent_path().string());
}

RuntimeUpdate parse_runtime_update(const std::string& yaml_text, const std::string& source) {
  Reader r{source, {}};
  RuntimeUpdate u;
  const YAML::Node root = yaml_reader::load(yaml_text, source);
  r.map(root, "", {"limits", "faults"}, [&](const std::string& key, const YAML::Node& v, const std::string& p) {
    if (key == "limits")
      u.limits = parse_limits(r, v, p);
    else
      u.faults = parse_faults(r, v, p);
  });
  if (!r.problems.empty()) throw StartupError(std::move(r.problems));
  return u;
}

}  // namespace callbackd::sandbox
