#include "sandbox/sandbox_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/host_scope.h"
#include "core/yaml_reader.h"
#include "sandbox/rate_window.h"

namespace callbackd::sandbox {

namespace {

using yaml_reader::Reader;
using yaml_reader::set;

// Where the keys are documented, for the fix of an unknown key.
constexpr const char* kDocumentation = "docs/sandbox.md, Configuration";

// A file name, resolved against the config file's directory.
std::optional<std::string> file_name(Reader& r, const YAML::Node& node, const std::string& path,
                                     const std::string& base_dir) {
  auto p = r.string(node, path);
  if (p && p->front() != '/' && !base_dir.empty()) return (std::filesystem::path(base_dir) / *p).string();
  return p;
}

FaultRule parse_rule(Reader& r, const YAML::Node& node, const std::string& path, bool random) {
  FaultRule rule;
  std::vector<std::string> known{"kind",         "code",       "status", "message",    "delay_ms",
                                 "skew_seconds", "size_bytes", "body",   "update_time"};
  if (random) known.push_back("probability");
  bool has_kind = false;
  const bool is_map = r.map(node, path, known, [&](const std::string& key, const YAML::Node& v, const std::string& p) {
    if (key == "kind") {
      has_kind = true;
      // The documented kinds; fault_kind_from_string also takes "none", which is not one.
      static const std::vector<std::string> documented{
          "error",          "delay",          "timeout",          "reset",       "malformed_body", "bad_signature",
          "unknown_serial", "clock_skew",     "update_time_skew", "stale_close", "oversized_body", "malformed_http",
          "proxy_answer",   "odd_update_time"};
      if (auto name = r.string(v, p)) {
        if (auto kind = fault_kind_from_string(*name))
          rule.kind = *kind;
        else
          r.problem(p, "expected one of " + yaml_reader::join(documented) + ", found '" + *name + "'",
                    "name the fault kind");
      }
    } else if (key == "code") {
      set(rule.code, r.string(v, p));
    } else if (key == "status") {
      set(rule.status, r.integer<int>(v, p, 400, 599));
    } else if (key == "message") {
      set(rule.message, r.string(v, p));
    } else if (key == "delay_ms") {
      if (auto ms = r.integer<long long>(v, p, 0, 600'000)) rule.delay = std::chrono::milliseconds(*ms);
    } else if (key == "skew_seconds") {
      if (auto s = r.integer<long long>(v, p, -86'400, 86'400)) rule.skew = std::chrono::seconds(*s);
    } else if (key == "size_bytes") {
      set(rule.size_bytes, r.integer<std::size_t>(v, p, 0, 64LL * 1024 * 1024));
    } else if (key == "body") {
      if (auto body = r.one_of(v, p, {"html", "empty"}, "html: a proxy's error page; empty: no body at all"))
        rule.empty_body = *body == "empty";
    } else if (key == "update_time") {
      set(rule.update_time, r.string(v, p));
    } else if (key == "probability") {
      set(rule.probability, r.number(v, p, 0, 1));
    }
  });
  if (!is_map) return rule;
  if (!has_kind) r.problem(path + ".kind", "missing", "name the fault kind");
  if (rule.kind == FaultKind::error) {
    if (rule.code.empty())
      r.problem(path + ".code", "an error fault needs a code", "e.g. NOT_ENOUGH, SYSTEM_ERROR");
    else if (!error_code_info(rule.code) && rule.status == 0)
      r.problem(path + ".code", "'" + rule.code + "' is not a documented code",
                "use one of the seed table, SIGN_ERROR, SYSTEM_ERROR, or give a status");
  }
  return rule;
}

Limits parse_limits(Reader& r, const YAML::Node& node, const std::string& path) {
  Limits l;
  std::optional<std::size_t> w1, w60;
  r.map(node, path,
        {"set_per_minute", "window_1s", "window_60s", "per_source_address_per_minute", "get_per_second",
         "max_body_bytes", "idle_timeout_ms", "timeout_hold_ms"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "set_per_minute")
            set(l.set_per_minute, r.integer<std::uint32_t>(v, p, 1, 10'000'000));
          else if (key == "window_1s")
            w1 = r.integer<std::size_t>(v, p, 1, 10'000'000);
          else if (key == "window_60s")
            w60 = r.integer<std::size_t>(v, p, 1, 100'000'000);
          else if (key == "per_source_address_per_minute")
            set(l.per_source_address_per_minute, r.integer<std::uint32_t>(v, p, 1, 10'000'000));
          else if (key == "get_per_second")
            set(l.get_per_second, r.integer<std::size_t>(v, p, 1, 10'000'000));
          else if (key == "max_body_bytes")
            set(l.max_body_bytes, r.integer<std::size_t>(v, p, 64, 16 * 1024 * 1024));
          else if (key == "idle_timeout_ms") {
            if (auto ms = r.integer<long long>(v, p, 10, 3'600'000)) l.idle_timeout = std::chrono::milliseconds(*ms);
          } else if (key == "timeout_hold_ms") {
            if (auto ms = r.integer<long long>(v, p, 0, 3'600'000)) l.timeout_hold = std::chrono::milliseconds(*ms);
          }
        });
  const auto derived = limits_from_rate(l.set_per_minute);
  l.window_1s = w1.value_or(derived.per_1s);
  l.window_60s = w60.value_or(derived.per_60s);
  return l;
}

PlatformKey::Rotation parse_rotation(Reader& r, const YAML::Node& node, const std::string& path,
                                     const std::string& base_dir) {
  PlatformKey::Rotation rotation;
  r.map(node, path, {"private_key_file", "certificate_file", "listed_after_ms", "switch_after_ms"},
        [&](const std::string& k, const YAML::Node& v, const std::string& p) {
          if (k == "private_key_file")
            set(rotation.private_key_file, file_name(r, v, p, base_dir));
          else if (k == "certificate_file")
            set(rotation.certificate_file, file_name(r, v, p, base_dir));
          else if (auto ms = r.integer<long long>(v, p, 0, 365LL * 24 * 3'600'000))
            (k == "listed_after_ms" ? rotation.listed_after : rotation.switch_after) = std::chrono::milliseconds(*ms);
        });
  if (rotation.listed_after > rotation.switch_after)
    r.problem(path + ".listed_after_ms", "is after switch_after_ms: a certificate is listed before it signs",
              "set listed_after_ms <= switch_after_ms");
  if (rotation.private_key_file.empty() || rotation.certificate_file.empty())
    r.problem(path, "a rotation needs private_key_file and certificate_file",
              "a second key and platform certificate (scripts/sandbox-keys writes platform2_*)");
  return rotation;
}

FaultPlan parse_faults(Reader& r, const YAML::Node& node, const std::string& path) {
  FaultPlan plan;
  r.map(node, path, {"seed", "sub_merchants", "random", "certificates"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "certificates") {
            r.entries(v, p, "a map of calling merchant mchid to bad_tag or unlisted_signer",
                      [&](const std::string& mchid, const YAML::Node& fault, const std::string& fault_path) {
                        const auto name = r.string(fault, fault_path);
                        if (!name) return;
                        if (auto f = certificate_fault_from_string(*name))
                          plan.certificates_by_caller[mchid] = *f;
                        else
                          r.problem(fault_path, "unknown certificate fault '" + *name + "'",
                                    "bad_tag or unlisted_signer");
                      });
          } else if (key == "seed") {
            set(plan.seed, r.integer<std::uint64_t>(v, p, 0, 9'000'000'000'000'000'000LL));
          } else if (key == "sub_merchants") {
            r.entries(v, p, "a map of sub-merchant mchid to fault",
                      [&](const std::string& mchid, const YAML::Node& rule, const std::string& rule_path) {
                        plan.by_sub_merchant[mchid] = parse_rule(r, rule, rule_path, false);
                      });
          } else if (key == "random") {
            double total = 0;
            const bool is_list = r.list(v, p, "a list of faults with a probability each",
                                        [&](const YAML::Node& item, const std::string& item_path) {
                                          plan.random.push_back(parse_rule(r, item, item_path, true));
                                          total += plan.random.back().probability;
                                        });
            if (is_list && total > 1.0 + 1e-9) r.problem(p, "probabilities add up to more than 1");
          }
        });
  return plan;
}

}  // namespace

SandboxConfig parse_sandbox_config(const std::string& yaml_text, const std::string& source,
                                   const std::string& base_dir) {
  Reader r(source, kDocumentation);
  SandboxConfig c;
  c.source = source;
  const YAML::Node root = yaml_reader::load(yaml_text, source);
  bool has_tls = false, has_platform = false;
  r.map(root, "", {"listen", "port_file", "tls", "platform", "merchants", "limits", "faults", "record_file"},
        [&](const std::string& key, const YAML::Node& v, const std::string& p) {
          if (key == "listen") {
            const auto s = r.string(v, p);
            if (!s) return;
            const auto colon = s->rfind(':');
            if (colon == std::string::npos)
              return r.problem(p, "expected ADDRESS:PORT, found '" + *s + "'", "e.g. 127.0.0.1:0 (0 = any free port)");
            c.listen_address = s->substr(0, colon);
            if (c.listen_address.size() > 2 && c.listen_address.front() == '[')
              c.listen_address = c.listen_address.substr(1, c.listen_address.size() - 2);
            set(c.port, r.integer<std::uint16_t>(YAML::Node(s->substr(colon + 1)), p, 0, 65535));
          } else if (key == "port_file") {
            set(c.port_file, file_name(r, v, p, base_dir));
          } else if (key == "record_file") {
            set(c.record_file, file_name(r, v, p, base_dir));
          } else if (key == "tls") {
            has_tls = true;
            r.map(v, p, {"certificate_file", "private_key_file"},
                  [&](const std::string& k, const YAML::Node& vv, const std::string& pp) {
                    set(k == "certificate_file" ? c.tls_certificate_file : c.tls_private_key_file,
                        file_name(r, vv, pp, base_dir));
                  });
          } else if (key == "platform") {
            has_platform = true;
            r.map(v, p, {"key_id", "private_key_file", "certificate_file", "rotation"},
                  [&](const std::string& k, const YAML::Node& vv, const std::string& pp) {
                    if (k == "key_id")
                      set(c.platform.key_id, r.string(vv, pp));
                    else if (k == "private_key_file")
                      set(c.platform.private_key_file, file_name(r, vv, pp, base_dir));
                    else if (k == "certificate_file")
                      set(c.platform.certificate_file, file_name(r, vv, pp, base_dir));
                    else
                      c.platform.rotation = parse_rotation(r, vv, pp, base_dir);
                  });
          } else if (key == "merchants") {
            r.list(v, p, "a list of merchants", [&](const YAML::Node& item, const std::string& mp) {
              RegisteredMerchant m;
              r.map(item, mp, {"mchid", "serial_no", "public_key_file", "apiv3_key_file"},
                    [&](const std::string& k, const YAML::Node& vv, const std::string& pp) {
                      if (k == "mchid")
                        set(m.caller_mchid, r.string(vv, pp));
                      else if (k == "serial_no")
                        set(m.serial_no, r.string(vv, pp));
                      else if (k == "apiv3_key_file")
                        set(m.apiv3_key_file, file_name(r, vv, pp, base_dir));
                      else
                        set(m.public_key_file, file_name(r, vv, pp, base_dir));
                    });
              if (m.caller_mchid.empty() || m.serial_no.empty() || m.public_key_file.empty())
                r.problem(mp, "a merchant needs mchid, serial_no and public_key_file");
              c.merchants.push_back(std::move(m));
            });
          } else if (key == "limits") {
            c.limits = parse_limits(r, v, p);
          } else if (key == "faults") {
            c.faults = parse_faults(r, v, p);
          }
        });
  if (root.IsMap()) {
    if (!has_tls || c.tls_certificate_file.empty() || c.tls_private_key_file.empty())
      r.problem("tls", "certificate_file and private_key_file are required",
                "run scripts/sandbox-keys DIR to make them");
    if (!has_platform || c.platform.private_key_file.empty())
      r.problem("platform.private_key_file", "required (the key that signs responses)",
                "run scripts/sandbox-keys DIR to make one");
    if (has_platform && c.platform.key_id.empty() && !c.platform.certificate_file)
      r.problem("platform.key_id", "required in public-key mode", "PUB_KEY_ID_... as written by scripts/sandbox-keys");
    const bool certificate_merchants =
        std::any_of(c.merchants.begin(), c.merchants.end(), [](const auto& m) { return m.apiv3_key_file.has_value(); });
    if ((certificate_merchants || c.platform.rotation) && !c.platform.certificate_file)
      r.problem("platform.certificate_file",
                "required when a merchant has an apiv3_key_file or platform.rotation is set (certificate mode)",
                "platform_cert.pem as written by scripts/sandbox-keys");
  }
  r.throw_if_any();
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
  Reader r(source, kDocumentation);
  RuntimeUpdate u;
  const YAML::Node root = yaml_reader::load(yaml_text, source);
  r.map(root, "", {"limits", "faults"}, [&](const std::string& key, const YAML::Node& v, const std::string& p) {
    if (key == "limits")
      u.limits = parse_limits(r, v, p);
    else
      u.faults = parse_faults(r, v, p);
  });
  r.throw_if_any();
  return u;
}

}  // namespace callbackd::sandbox
