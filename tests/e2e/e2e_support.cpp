#include "e2e/e2e_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <cstdlib>
#include <map>
#include <thread>

#include "http/https_client.h"

namespace fs = std::filesystem;
using callbackd::test::read_file;

namespace e2e {

namespace {
std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

std::string sub_merchant(int block, int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2%02d%07d", block, i);
  return buf;
}

PrivateCluster::PrivateCluster() {
  char tmpl[] = "/tmp/callbackd-pgprivate.XXXXXX";
  state_dir_ = mkdtemp(tmpl);
  if (const char* previous = std::getenv("CALLBACKD_PG_STATE_DIR")) previous_state_dir_ = previous;
  auto started = callbackd::test::run_process_for(
      {CALLBACKD_SOURCE_DIR "/tests/pg/pg-harness", "start", state_dir_, CALLBACKD_BINARY}, std::chrono::seconds{120});
  if (started.exit_status != 0) {
    callbackd::test::run_process_for({CALLBACKD_SOURCE_DIR "/tests/pg/pg-harness", "stop", state_dir_},
                                     std::chrono::seconds{60});
    fs::remove_all(state_dir_);
    FAIL("pg-harness start " << state_dir_ << " failed:\n" << started.output);
  }
  setenv("CALLBACKD_PG_STATE_DIR", state_dir_.c_str(), 1);
}

PrivateCluster::~PrivateCluster() {
  // Runs pg_ctl stop -m immediate and removes the cluster, whatever state the test left it in.
  callbackd::test::run_process_for({CALLBACKD_SOURCE_DIR "/tests/pg/pg-harness", "stop", state_dir_},
                                   std::chrono::seconds{60});
  fs::remove_all(state_dir_);
  if (previous_state_dir_)
    setenv("CALLBACKD_PG_STATE_DIR", previous_state_dir_->c_str(), 1);
  else
    unsetenv("CALLBACKD_PG_STATE_DIR");
}

void PrivateCluster::stop_server() {
  auto r = callbackd::test::run_process_for({CALLBACKD_SOURCE_DIR "/tests/pg/pg-harness", "stop-server", state_dir_},
                                            std::chrono::seconds{60});
  INFO(r.output);
  REQUIRE(r.exit_status == 0);
}

void PrivateCluster::start_server() {
  auto r = callbackd::test::run_process_for({CALLBACKD_SOURCE_DIR "/tests/pg/pg-harness", "start-server", state_dir_},
                                            std::chrono::seconds{60});
  INFO(r.output);
  REQUIRE(r.exit_status == 0);
}

DaemonAccount::DaemonAccount() : binary_(CALLBACKD_BINARY), ca_file_(CALLBACKD_E2E_KEYS_DIR "/ca.pem") {
  if (::geteuid() != 0) return;
  const passwd* account = ::getpwnam("postgres");
  REQUIRE(account != nullptr);
  REQUIRE(account->pw_uid != 0);
  drop = true;
  uid = account->pw_uid;
  gid = account->pw_gid;
  char tmpl[] = "/tmp/callbackd-account.XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  dir_ = tmpl;
  // Root's copies, readable (and the binary executable) by everyone: the account may use them,
  // not change them.
  REQUIRE(::chmod(dir_.c_str(), 0755) == 0);
  auto give_copy = [&](const std::string& from, const std::string& name, fs::perms mode) {
    const std::string to = dir_ + "/" + name;
    fs::copy_file(from, to);
    fs::permissions(to, mode);
    return to;
  };
  using fs::perms;
  const perms readable = perms::owner_read | perms::owner_write | perms::group_read | perms::others_read;
  binary_ = give_copy(binary_, "callbackd", readable | perms::owner_exec | perms::group_exec | perms::others_exec);
  ca_file_ = give_copy(ca_file_, "ca.pem", readable);
}

DaemonAccount::~DaemonAccount() {
  std::error_code ignored;
  if (!dir_.empty()) fs::remove_all(dir_, ignored);
}

std::vector<std::string> DaemonAccount::command(const std::vector<std::string>& args) const {
  std::vector<std::string> command;
  if (drop)
    command = {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid), "--clear-groups",
               "--"};
  command.push_back(binary_);
  command.insert(command.end(), args.begin(), args.end());
  return command;
}

Environment::Environment() : keys_(CALLBACKD_E2E_KEYS_DIR) {
  char tmpl[] = "/tmp/callbackd-e2e.XXXXXX";
  work_ = mkdtemp(tmpl);
}

Environment::~Environment() {
  stop_sandbox();
  fs::remove_all(work_);
}

void Environment::exec(const std::string& sql) {
  pqxx::connection c(db_.conninfo());
  pqxx::work tx(c);
  tx.exec0(sql);
  tx.commit();
}

long long Environment::count(const std::string& sql) {
  pqxx::connection c(db_.conninfo());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<long long>();
}

std::string Environment::text(const std::string& sql) {
  pqxx::connection c(db_.conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec1(sql);
  return r[0].is_null() ? "NULL" : r[0].as<std::string>();
}

std::map<std::string, long long> Environment::states() {
  pqxx::connection c(db_.conninfo());
  pqxx::read_transaction tx(c);
  std::map<std::string, long long> out;
  for (const auto& r : tx.exec("SELECT state, count(*) FROM callbackd.sync_status GROUP BY state"))
    out[r[0].as<std::string>()] = r[1].as<long long>();
  return out;
}

void Environment::add_tenant(const TenantSpec& t) {
  const std::string serial = trim(read_file(keys_ + "/merchant_" + t.caller_mchid + ".serial"));
  const std::string key_id = trim(read_file(keys_ + "/platform_key_id"));
  pqxx::connection c(db_.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, wechatpay_key_id, "
      "wechatpay_key_path, rate_per_minute, mode, max_in_flight, adopt_existing, drift_policy) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
      t.tenant_id, t.caller_mchid, serial, t.private_key_path.value_or("merchant_" + t.caller_mchid + ".key"),
      t.wechatpay_key_id.value_or(key_id), t.wechatpay_key_path.value_or("platform_public.pem"), t.rate_per_minute,
      t.mode, t.max_in_flight, t.adopt_existing, t.drift_policy);
  tx.commit();
}

std::string Environment::apiv3_key_file(const std::string& caller) {
  const std::string name = "apiv3_" + caller + ".key";
  const std::string path = keys_ + "/" + name;
  if (!fs::exists(path)) {
    // Written beside and renamed: tests running at once see the whole file or none.
    const std::string tmp = path + "." + std::to_string(getpid());
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "e2e-apiv3-key-" << caller << std::string(32 - 14 - caller.size(), 'k') << "\n";
    }
    fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write);
    fs::rename(tmp, path);
  }
  return name;
}

void Environment::add_certificate_mode_tenant(const std::string& tenant_id, const std::string& caller) {
  const std::string serial = trim(read_file(keys_ + "/merchant_" + caller + ".serial"));
  exec(
      "INSERT INTO callbackd.tenants (tenant_id, mchid, merchant_serial_no, private_key_path, apiv3_key_path, "
      "rate_per_minute, max_in_flight) VALUES ('" +
      tenant_id + "', '" + caller + "', '" + serial + "', 'merchant_" + caller + ".key', '" + apiv3_key_file(caller) +
      "', 60000, 8)");
}

void Environment::sandbox_certificate_mode(std::vector<std::string> callers, std::string rotation_yaml) {
  certificate_callers_ = std::move(callers);
  rotation_yaml_ = std::move(rotation_yaml);
}

void Environment::add_rows(const std::string& tenant_id, int block, int count) {
  pqxx::connection c(db_.conninfo());
  pqxx::work tx(c);
  tx.exec_params0(
      "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) "
      "SELECT '2' || lpad($2::text, 2, '0') || lpad(i::text, 7, '0'), $1, "
      "'https://notify.example.com/' || $2 || '/' || i, true FROM generate_series(0, $3 - 1) AS i",
      tenant_id, block, count);
  tx.commit();
}

std::string Environment::write_sandbox_config(const std::string& limits_yaml, const std::string& faults_yaml,
                                              std::uint16_t port) {
  std::ostringstream y;
  y << "listen: \"127.0.0.1:" << port << "\"\n"
    << "port_file: " << work_ << "/sandbox.port\n"
    << "record_file: " << work_ << "/requests.jsonl\n"
    << "tls:\n  certificate_file: " << keys_ << "/server.pem\n  private_key_file: " << keys_ << "/server.key\n"
    << "platform:\n  key_id: \"" << trim(read_file(keys_ + "/platform_key_id")) << "\"\n"
    << "  private_key_file: " << keys_ << "/platform_private.pem\n";
  if (!certificate_callers_.empty()) {
    y << "  certificate_file: " << keys_ << "/platform_cert.pem\n";
    if (!rotation_yaml_.empty())
      y << "  rotation:\n    private_key_file: " << keys_ << "/platform2_private.pem\n    certificate_file: " << keys_
        << "/platform2_cert.pem\n"
        << rotation_yaml_;
  }
  y << "merchants:\n";
  for (const std::string m : {"1900000001", "1900000002", "1900000003", "1900000004"}) {
    y << "  - mchid: \"" << m << "\"\n    serial_no: \"" << trim(read_file(keys_ + "/merchant_" + m + ".serial"))
      << "\"\n    public_key_file: " << keys_ << "/merchant_" << m << ".pem\n";
    if (std::find(certificate_callers_.begin(), certificate_callers_.end(), m) != certificate_callers_.end())
      y << "    apiv3_key_file: " << keys_ << "/" << apiv3_key_file(m) << "\n";
  }
  y << "limits:\n" << (limits_yaml.empty() ? "  set_per_minute: 60000\n" : limits_yaml);
  if (!faults_yaml.empty()) y << "faults:\n" << faults_yaml;
  const std::string config = work_ + "/sandbox.yaml";
  std::ofstream(config) << y.str();
  fs::remove(work_ + "/sandbox.port");
  return config;
}

void Environment::start_sandbox(const std::string& limits_yaml, const std::string& faults_yaml, std::uint16_t port) {
  stop_sandbox();
  const std::string config = write_sandbox_config(limits_yaml, faults_yaml, port);
  sandbox_ = callbackd::test::spawn_process({CALLBACKD_SANDBOX_BINARY, "serve", config});
  for (int i = 0; i < 100 && read_file(work_ + "/sandbox.port").empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  const std::string bound = trim(read_file(work_ + "/sandbox.port"));
  INFO(read_file(sandbox_->output_path));
  REQUIRE(!bound.empty());
  sandbox_port_ = static_cast<std::uint16_t>(std::stoi(bound));
}

void Environment::stop_sandbox() {
  if (!sandbox_) return;
  if (sandbox_->pid > 0) kill(sandbox_->pid, SIGTERM);  // never kill(-1, ...)
  callbackd::test::wait_exit_status(*sandbox_);
  unlink(sandbox_->output_path.c_str());
  sandbox_.reset();
}

namespace {
callbackd::http::HttpResponse sandbox_call(const std::string& keys, std::uint16_t port, const std::string& method,
                                           const std::string& target, const std::string& body = "") {
  callbackd::WechatpayConfig w;
  w.base_url = "https://127.0.0.1:" + std::to_string(port);
  w.backup_url = "";
  w.ca_file = keys + "/ca.pem";
  callbackd::http::HttpRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  auto r = callbackd::http::send_blocking(w, req);
  REQUIRE(r.ok());
  return std::move(r).value();
}
}  // namespace

nlohmann::json Environment::sandbox_stats() {
  return nlohmann::json::parse(sandbox_call(keys_, sandbox_port_, "GET", "/sandbox/stats").body);
}

void Environment::configure_sandbox(const std::string& yaml) {
  const auto r = sandbox_call(keys_, sandbox_port_, "POST", "/sandbox/config", yaml);
  INFO(r.body);
  REQUIRE(r.status == 200);
}

void Environment::set_live_values(const std::map<std::string, std::string>& values) {
  nlohmann::json body = nlohmann::json::array();
  for (const auto& [mchid, url] : values) body.push_back({{"mchid", mchid}, {"notify_url", url}});
  const auto r = sandbox_call(keys_, sandbox_port_, "POST", "/sandbox/set", body.dump());
  INFO(r.body);
  REQUIRE(r.status == 200);
}

namespace {

std::vector<nlohmann::json> recorded_requests(const std::string& file, bool reads) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(file));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto r = nlohmann::json::parse(line);
    if (r.value("read", false) == reads) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<nlohmann::json> Environment::sandbox_requests() {
  return recorded_requests(work_ + "/requests.jsonl", false);
}
std::vector<nlohmann::json> Environment::sandbox_reads() { return recorded_requests(work_ + "/requests.jsonl", true); }

std::string Environment::write_daemon_config(const std::string& extra_yaml, const DaemonConfigOptions& options) {
  std::ostringstream y;
  y << "database:\n  url: \"" << (options.database_url.empty() ? db_.conninfo() : options.database_url) << "\"\n"
    << "wechatpay:\n  base_url: "
    << (options.base_url.empty() ? "https://127.0.0.1:" + std::to_string(sandbox_port_) : options.base_url) << "\n"
    << (options.backup_url ? "  backup_url: \"" + *options.backup_url + "\"\n" : "")
    << "  ca_file: " << (options.ca_file.empty() ? keys_ + "/ca.pem" : options.ca_file)
    << "\n  request_timeout: " << options.request_timeout.count() << "ms\n"
    << "  read_rate_per_second: " << options.read_rate_per_second << "\n"
    << options.wechatpay_extra
    << (options.credentials_dir
            ? "credentials_dir: " + (options.credentials_dir_path.empty() ? keys_ : options.credentials_dir_path) + "\n"
            : "")
    << "metrics:\n  listen: \"" << options.metrics_listen << "\"\n"
    << extra_yaml;
  const std::string path = work_ + "/callbackd.yaml";
  std::ofstream(path) << y.str();
  return path;
}

std::vector<std::string> Environment::daemon_command(const std::string& extra_yaml,
                                                     const DaemonConfigOptions& options) {
  return {CALLBACKD_BINARY, "--config", write_daemon_config(extra_yaml, options), "run"};
}

callbackd::test::Finished Environment::run_until_idle(std::chrono::seconds limit, const std::string& extra_yaml,
                                                      const DaemonConfigOptions& options) {
  auto command = daemon_command(extra_yaml, options);
  command.push_back("--exit-when-idle");
  return callbackd::test::run_process_for(command, limit);
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return true;
}

void check_audit_matches_state_and_sandbox(Environment& env) {
  CHECK(env.count(
            "SELECT count(*) FROM callbackd.sub_merchant_state s WHERE s.state = 'in_sync' AND NOT EXISTS ("
            "SELECT 1 FROM callbackd.audit_log a WHERE a.mchid = s.mchid AND a.outcome IN ('applied', 'adopted') "
            "AND a.desired_revision = s.applied_revision AND a.update_time IS NOT DISTINCT FROM s.update_time)") == 0);

  struct Answer {
    std::string sub_merchant;
    int status;
  };
  std::map<std::string, Answer> answers;  // by request_id
  auto index = [&](const std::vector<nlohmann::json>& recorded) {
    for (const auto& r : recorded)
      if (r.contains("request_id") && r["request_id"].is_string() && !r["request_id"].get<std::string>().empty())
        answers[r["request_id"].get<std::string>()] = {r.value("sub_merchant", ""), r.value("status", 0)};
  };
  // `applied` rows carry a POST's Request-ID, `adopted` ones a read's (a row whose POST was
  // applied but not recorded before a crash is adopted after the restart: its read finds it set).
  index(env.sandbox_requests());
  index(env.sandbox_reads());
  pqxx::connection c(env.db().conninfo());
  pqxx::read_transaction tx(c);
  std::size_t applied = 0;
  std::vector<std::string> unverified;
  for (const auto& row :
       tx.exec("SELECT id, mchid, request_id FROM callbackd.audit_log WHERE outcome IN ('applied', 'adopted')")) {
    ++applied;
    const std::string mchid = row[1].as<std::string>();
    const std::string request_id = row[2].is_null() ? "" : row[2].as<std::string>();
    const auto it = answers.find(request_id);
    if (it == answers.end() || it->second.status != 200 || it->second.sub_merchant != mchid)
      unverified.push_back(
          "audit id " + row[0].as<std::string>() + " mchid " + mchid + " request_id '" + request_id + "'" +
          (it == answers.end() ? " unknown to the sandbox"
                               : " answered " + std::to_string(it->second.status) + " for " + it->second.sub_merchant));
  }
  INFO(applied << " applied audit rows; not backed by a 200 for their sub-merchant: " << unverified.size()
               << (unverified.empty() ? "" : ", first: " + unverified.front()));
  CHECK(applied > 0);
  CHECK(unverified.empty());
}

callbackd::test::Child Environment::start_daemon(const std::string& extra_yaml, const DaemonConfigOptions& options,
                                                 bool exit_when_idle) {
  auto command = daemon_command(extra_yaml, options);
  if (exit_when_idle) command.push_back("--exit-when-idle");
  return callbackd::test::spawn_process(command);
}

int Environment::stop_daemon(const callbackd::test::Child& daemon, std::chrono::seconds limit) {
  REQUIRE(daemon.pid > 0);  // never kill(-1, ...) or the process group
  kill(daemon.pid, SIGTERM);
  return callbackd::test::wait_exit_status_for(daemon, limit);
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

callbackd::test::Finished check_metrics(int port, const std::vector<std::string>& samples) {
  std::vector<std::string> args{CALLBACKD_PYTHON3, CALLBACKD_SOURCE_DIR "/tests/e2e/check-metrics",
                                "http://127.0.0.1:" + std::to_string(port) + "/metrics"};
  args.insert(args.end(), samples.begin(), samples.end());
  return callbackd::test::run_process(args);
}

LowerLimitRun check_adapts_to_lower_server_limit(Environment& env, int configured_per_minute, int server_per_minute,
                                                 int rows, std::chrono::seconds limit) {
  TenantSpec t("acme");
  t.rate_per_minute = configured_per_minute;
  env.add_tenant(t);
  env.add_rows("acme", 1, rows);
  env.start_sandbox("  set_per_minute: " + std::to_string(server_per_minute) + "\n");
  const auto started = std::chrono::steady_clock::now();
  auto run = env.run_until_idle(limit);
  LowerLimitRun out;
  out.took = std::chrono::steady_clock::now() - started;
  INFO(run.output.substr(run.output.size() > 3000 ? run.output.size() - 3000 : 0));
  REQUIRE(run.exit_status == 0);
  // No row failed: a 429 slows the tenant down, it is not the row's fault.
  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", rows}});
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'rate_limited' AND http_status = 429") > 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome NOT IN ('applied', 'rate_limited')") == 0);
  CHECK(env.count("SELECT max(attempts) FROM callbackd.sync_status") <= 1);
  // Each row: exactly one applied attempt, and it is the row's last audit row.
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status s WHERE (SELECT count(*) FROM callbackd.audit_log a "
                  "WHERE a.mchid = s.mchid AND a.outcome = 'applied') <> 1") == 0);
  CHECK(env.count("SELECT count(*) FROM (SELECT DISTINCT ON (mchid) mchid, outcome FROM callbackd.audit_log "
                  "WHERE mchid IS NOT NULL ORDER BY mchid, id DESC) last WHERE outcome <> 'applied'") == 0);
  check_audit_matches_state_and_sandbox(env);
  out.sandbox_stats = env.sandbox_stats();
  // The audit and the server agree: every 429 the sandbox sent is one rate_limited row.
  const auto& outcomes = out.sandbox_stats["callers"][t.caller_mchid]["outcomes"];
  const long long refused =
      outcomes.count("429 FREQUENCY_LIMIT_EXCEED") ? outcomes["429 FREQUENCY_LIMIT_EXCEED"].get<long long>() : 0;
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE outcome = 'rate_limited'") == refused);
  return out;
}

}  // namespace e2e
