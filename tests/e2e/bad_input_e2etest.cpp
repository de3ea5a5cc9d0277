// Bad input (issue 9): hostile desired rows, broken config and key files. Each case asserts
// what the data looks like afterwards: what desired_callbacks holds (byte for byte), what
// sync_status and audit_log say, what reached the sandbox, and what the daemon printed.
#include <catch2/catch.hpp>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <fstream>
#include <pqxx/pqxx>
#include <set>

#include "core/desired/validation.h"
#include "core/logging/log_line.h"
#include "e2e/e2e_support.h"
#include "support/acl.h"

using namespace e2e;
namespace fs = std::filesystem;

namespace {

std::string one(Environment& env, const std::string& sql, const std::string& param) {
  pqxx::connection c(env.db().conninfo());
  pqxx::read_transaction tx(c);
  auto r = tx.exec_params1(sql, param);
  return r[0].is_null() ? "NULL" : r[0].as<std::string>();
}

// The longest run of one byte in `text`: a 10 MB value copied into a log line shows up as one.
std::size_t longest_run(const std::string& text, char c) {
  std::size_t best = 0, run = 0;
  for (char x : text) best = std::max(best, run = (x == c ? run + 1 : 0));
  return best;
}

// The daemon's log records (logfmt lines, the one format the e2e configs use unless asked),
// each parsed back into its fields exactly as written; a line that is not a record fails the
// test. The one line that is not a log record is `run --exit-when-idle`'s summary on stdout
// (cli.md), which the test sees in the same output.
std::vector<callbackd::logging::Fields> log_records(const std::string& output) {
  std::vector<callbackd::logging::Fields> out;
  for (std::size_t at = 0; at < output.size();) {
    const std::size_t end = std::min(output.find('\n', at), output.size());
    const std::string line = output.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line.starts_with("callbackd: ")) continue;
    INFO("line: " << line.substr(0, 300));
    if (line.front() == '{') {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      CHECK_FALSE(j.is_discarded());
      if (j.is_discarded() || !j.is_object()) continue;
      callbackd::logging::Fields fields;
      for (const auto& [k, v] : j.items()) fields.push_back({k, v.is_string() ? v.get<std::string>() : v.dump()});
      out.push_back(std::move(fields));
      continue;
    }
    auto fields = callbackd::logging::parse_logfmt(line);
    CHECK(fields.has_value());
    if (fields) out.push_back(std::move(*fields));
  }
  return out;
}

// The values of `key` in one record (a forged field shows up as a second value, or in JSON as
// `key_2`).
std::vector<std::string> values(const callbackd::logging::Fields& record, const std::string& key) {
  std::vector<std::string> out;
  for (const auto& f : record)
    if (f.key == key || f.key.starts_with(key + "_")) out.push_back(f.value);
  return out;
}

}  // namespace

TEST_CASE("hostile desired rows: invalid, stored byte-exact, never sent, quoted not copied", "[e2e][bad-input]") {
  // 10 MiB of one byte: the run that must never appear in a log line, message or request.
  const std::string ten_mb_url = "https://big.example.com/" + std::string(10 * 1024 * 1024, 'x');
  struct Bad {
    std::string mchid;
    std::optional<std::string> notify_url;  // nullopt: SQL NULL
    std::string field;                      // the field the message must start with
    std::string says;                       // a part of the message that says what to fix
  };
  const std::vector<Bad> bad = {
      // SQL injection: values are bound parameters, never SQL; these fail on their own merits.
      {"1' OR '1'='1", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},
      {"1;DROP TABLE callbackd.tenants--", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},
      {"3100000001", "https://x.example.com/'; DROP TABLE callbackd.audit_log; --", "notify_url", "percent-encode"},
      {"3100000002", "https://x.example.com/\"||pg_sleep(10)||\"", "notify_url", "percent-encode it (%22)"},
      // Not https.
      {"3100000003", "http://plain.example.com/cb", "notify_url", "absolute https URL"},
      {"3100000004", "javascript:alert(1)", "notify_url", "absolute https URL"},
      {"3100000005", "//evil.example.com/cb", "notify_url", "absolute https URL"},
      // Nothing.
      {"3100000012", "", "notify_url", "is empty; expected an absolute https URL"},
      {"3100000013", std::nullopt, "notify_url", "is empty; expected an absolute https URL"},
      // 10 MB.
      {"3100000006", ten_mb_url, "notify_url", "is 10485784 bytes; expected at most 256"},
      // Control characters (NUL cannot be stored in PostgreSQL text: see the next test).
      {"3100000007", "https://ctl.example.com/\x01", "notify_url", "control character at byte 24"},
      {"3100000008", "https://ctl.example.com/a\tb", "notify_url", "control character at byte 25"},
      {"3100000009", "https://ctl.example.com/a\nlevel=error event=forged", "notify_url",
       "control character at byte 25"},
      {"3100000010", "https://ctl.example.com/\x7f", "notify_url", "control character at byte 24"},
      // Bidi overrides: the bytes are kept, the message shows '?' where they were.
      {"3100000011", "https://ctl.example.com/\u202Egnp.exe", "notify_url", "non-ASCII byte at byte 24"},
      {"\u202E1900000001", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},
      // Not digits.
      {"12ab", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},
      {"\uFF11\uFF12\uFF13", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},  // full-width digits
      {" 1900000002", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},
      {"1\nlevel=error event=forged", "https://ok.example.com/", "mchid", "1-20 ASCII digits"},
      {std::string(1000, 'a'), "https://ok.example.com/", "mchid", "found 1000 bytes"},
      // 200 kB that compress well enough to fit the primary-key index (see the next test for
      // one that does not).
      {std::string(200'000, '7') + "x", "https://ok.example.com/", "mchid", "found 200001 bytes"},
  };
  // Look like attacks, are legal URLs: sent verbatim, as JSON, and applied.
  const std::vector<std::pair<std::string, std::string>> legal = {
      {"3200000001", "https://x.example.com/';DROP%20TABLE%20callbackd.audit_log;--"},
      {"3200000002", "https://x.example.com/?q=1'OR'1'='1&$$=$$"},
  };

  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 3);
  {
    pqxx::connection c(env.db().conninfo());
    pqxx::work tx(c);
    for (const auto& row : bad)
      tx.exec_params0(
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES ($1, 'acme', $2, true)",
          row.mchid, row.notify_url);  // pqxx binds nullopt as NULL
    for (const auto& [mchid, url] : legal)
      tx.exec_params0(
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url, switch) VALUES ($1, 'acme', $2, true)",
          mchid, url);
    tx.commit();
  }
  env.start_sandbox();
  // The operator's views stay readable with the 10 MB row and the 200 kB mchid in them, both
  // while the rows are queued (plan lists them) and after they were settled.
  auto operator_views_stay_short = [&](const char* when) {
    const std::string config = env.write_daemon_config();
    for (const char* command : {"status", "plan"}) {
      auto shown =
          callbackd::test::run_process_for({CALLBACKD_BINARY, "--config", config, command}, std::chrono::seconds{60});
      INFO(when << ", " << command << ": " << shown.output.substr(0, 2000));
      CHECK(shown.exit_status == 0);
      CHECK(shown.output.size() < 64 * 1024);
      // A value is quoted up to 1 KiB, then "…(N bytes)" (app/report_text.h).
      CHECK(longest_run(shown.output, 'x') <= 1024);
      CHECK(longest_run(shown.output, '7') <= 1024);
      CHECK(contains(shown.output, "…(200001 bytes)") ==
            (std::string(command) == "plan" && std::string(when) == "before the run"));
      CHECK_FALSE(contains(shown.output, "\u202E"));
    }
  };
  operator_views_stay_short("before the run");
  auto run = env.run_until_idle();
  INFO(run.output.substr(0, 4000));
  REQUIRE(run.exit_status == 2);  // idle with work left: the invalid rows (cli.md)

  CHECK(env.states() == std::map<std::string, long long>{{"in_sync", 3 + static_cast<long long>(legal.size())},
                                                         {"invalid", static_cast<long long>(bad.size())}});
  pqxx::connection c(env.db().conninfo());
  for (const auto& row : bad) {
    const std::string url = row.notify_url.value_or("");
    INFO("mchid " << row.mchid.substr(0, 40) << " notify_url " << (row.notify_url ? url.substr(0, 60) : "NULL"));
    pqxx::read_transaction tx(c);
    // Stored verbatim: the very bytes inserted, whatever they are.
    const auto desired =
        tx.exec_params1("SELECT notify_url FROM callbackd.desired_callbacks WHERE mchid = $1", row.mchid);
    CHECK(desired[0].as<std::optional<std::string>>() == row.notify_url);
    const auto status = tx.exec_params1(
        "SELECT state, last_error_code, last_error_message, applied_notify_url IS NULL, attempts, "
        "octet_length(desired_notify_url) FROM callbackd.sync_status WHERE mchid = $1",
        row.mchid);
    CHECK(status[0].as<std::string>() == "invalid");
    CHECK(status[1].as<std::string>() == "INVALID_DESIRED_ROW");
    const std::string message = status[2].as<std::string>();
    // The message is the validator's, names the field first and says what to do.
    const auto expected = callbackd::desired::validate_desired(row.mchid, url);
    REQUIRE(expected.has_value());
    CHECK(message == expected->message);
    CHECK(message.starts_with(row.field + " "));
    CHECK(contains(message, row.says));
    CHECK(message.size() < 300);
    CHECK(message.find('\n') == std::string::npos);
    CHECK_FALSE(contains(message, "\u202E"));
    CHECK(status[3].as<bool>());
    CHECK(status[5].as<std::size_t>(0) == url.size());
    // One audit row, no HTTP status: nothing was sent.
    const auto audit = tx.exec_params1(
        "SELECT count(*), count(*) FILTER (WHERE outcome = 'invalid' AND http_status IS NULL AND "
        "error_code = 'INVALID_DESIRED_ROW' AND error_message = $2) FROM callbackd.audit_log WHERE mchid = $1",
        row.mchid, message);
    CHECK(audit[0].as<long long>() == 1);
    CHECK(audit[1].as<long long>() == 1);
  }
  {
    // The 10 MB value exists exactly twice in the database: the desired row, and the one audit
    // row that records what was refused (evidence, written once per revision). Messages quote
    // 64 bytes of it.
    pqxx::read_transaction tx(c);
    CHECK(tx.exec1("SELECT count(*) FROM callbackd.audit_log WHERE octet_length(notify_url) > 1000")
              .front()
              .as<long long>() == 1);
    CHECK(tx.exec1("SELECT max(octet_length(error_message)) FROM callbackd.audit_log").front().as<long long>() < 300);
    CHECK(tx.exec1("SELECT max(octet_length(last_error_message)) FROM callbackd.sub_merchant_state")
              .front()
              .as<long long>() < 300);
    CHECK(tx.exec1("SELECT count(*) FROM callbackd.pending_work").front().as<long long>() == 0);
    // The injection strings did nothing: the tables they name are intact.
    CHECK(tx.exec1("SELECT count(*) FROM callbackd.tenants").front().as<long long>() == 1);
  }

  // Never sent; the legal look-alikes were sent byte for byte.
  std::set<std::string> bad_mchids;
  for (const auto& row : bad) bad_mchids.insert(row.mchid);
  for (const auto& r : env.sandbox_requests()) {
    CHECK(bad_mchids.count(r["sub_merchant"].get<std::string>()) == 0);
    CHECK(r["status"].get<int>() == 200);
  }
  CHECK(env.sandbox_requests().size() == 3 + legal.size());
  // The sandbox stores what it received and answers with it; the daemon records the verified
  // answer: the round trip kept every byte.
  for (const auto& [mchid, url] : legal)
    CHECK(one(env, "SELECT applied_notify_url FROM callbackd.sync_status WHERE mchid = $1", mchid) == url);

  // The daemon's output: one record per line, no 10 MB copy, no raw bidi override or forged line.
  CHECK(run.output.size() < 256 * 1024);
  CHECK(longest_run(run.output, 'x') < 100);
  CHECK(longest_run(run.output, '7') < 100);
  CHECK_FALSE(contains(run.output, "\u202E"));
  CHECK_FALSE(contains(run.output, "\nlevel=error event=forged"));
  // Nor a forged field inside a line: an id from SQL is one value, escaped by the writer.
  CHECK(contains(run.output, R"(mchid="1\nlevel=error event=forged")"));
  CHECK_FALSE(contains(run.output, " event=forged "));
  CHECK_FALSE(contains(run.output, "\x01"));
  bool saw_forged_mchid = false;
  for (const auto& record : log_records(run.output)) {
    CHECK(values(record, "event").size() == 1);
    CHECK(values(record, "tenant").size() <= 1);
    for (const auto& e : values(record, "event")) CHECK(e != "forged");
    for (const auto& m : values(record, "mchid")) saw_forged_mchid |= m == "1\nlevel=error event=forged";
  }
  CHECK(saw_forged_mchid);
  std::size_t invalid_lines = 0, lines = 0;
  for (std::size_t at = 0; at < run.output.size();) {
    const std::size_t end = std::min(run.output.find('\n', at), run.output.size());
    const std::string line = run.output.substr(at, end - at);
    ++lines;
    // Every line is a record of its own (or the batch's one summary line on stdout, cli.md).
    CHECK((line.starts_with("ts=") || line.starts_with("callbackd: idle with work left: ")));
    if (contains(line, "event=row_invalid")) ++invalid_lines;
    at = end + 1;
  }
  // At most one warning per invalid row (the repeat limiter may drop some), none split.
  CHECK(invalid_lines >= 1);
  CHECK(invalid_lines <= bad.size());
  CHECK(lines < 100);

  // A second run finds nothing to do: invalid rows wait for their desired row to change.
  auto again = env.run_until_idle();
  CHECK(again.exit_status == 2);  // the invalid rows are still left
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log") == static_cast<long long>(3 + legal.size() + bad.size()));

  operator_views_stay_short("after the run");
}

TEST_CASE("an error message from WeChat Pay cannot forge log fields", "[e2e][bad-input][logging]") {
  // What the sandbox answers for one row: a documented error whose message is written to end
  // the quoted value and start fields of its own (and a second line). The daemon logs the
  // attempt with that message as its `error`.
  for (const std::string format : {"logfmt", "json"}) {
    INFO("log.format: " << format);
    Environment env;
    env.add_tenant(TenantSpec("acme"));
    env.add_rows("acme", 1, 3);
    const std::string target = sub_merchant(1, 0);
    env.start_sandbox("", "  sub_merchants:\n    \"" + target +
                              "\": {kind: error, code: PARAM_ERROR, message: \"x\\\" event=forged tenant=evil\\n"
                              "ts=2026-01-01T00:00:00.000Z level=error event=forged\"}\n");
    auto run = env.run_until_idle(std::chrono::seconds{90}, "log:\n  format: " + format + "\n");
    INFO(run.output.substr(run.output.size() > 4000 ? run.output.size() - 4000 : 0));
    // The run finishes (PARAM_ERROR parks the row: nothing left to do); the row is failed with
    // the message as the daemon keeps it (its control bytes shown as '?', the rest verbatim).
    CHECK(run.exit_status != -1);
    CHECK(one(env, "SELECT state || ' ' || last_error_code FROM callbackd.sync_status WHERE mchid = $1", target) ==
          "failed PARAM_ERROR");
    const std::string stored =
        one(env, "SELECT last_error_message FROM callbackd.sync_status WHERE mchid = $1", target);
    CHECK(stored.starts_with(R"(x" event=forged tenant=evil)"));

    std::size_t attempt_lines = 0;
    for (const auto& record : log_records(run.output)) {
      INFO("record of " << record.size() << " fields");
      // Every record has one event and at most one tenant, and none is the forged one.
      const auto events = values(record, "event");
      REQUIRE(events.size() == 1);
      CHECK(events[0] != "forged");
      const auto tenants = values(record, "tenant");
      CHECK(tenants.size() <= 1);
      for (const auto& t : tenants) CHECK(t == "acme");
      if (events[0] != "attempt_failed" || values(record, "mchid") != std::vector<std::string>{target}) continue;
      ++attempt_lines;
      // The attempt's record: its own fields, the message whole inside `error`.
      CHECK(tenants == std::vector<std::string>{"acme"});
      CHECK(values(record, "code") == std::vector<std::string>{"PARAM_ERROR"});
      CHECK(values(record, "error") == std::vector<std::string>{stored});
    }
    CHECK(attempt_lines == 1);
    CHECK_FALSE(contains(run.output, "\nts=2026-01-01T00:00:00.000Z level=error event=forged"));
  }
}

TEST_CASE("what PostgreSQL itself refuses at INSERT: the whole statement, nothing half-written", "[e2e][bad-input]") {
  // desired_callbacks has no CHECKs (one bad row must not fail a bulk load), but some values
  // cannot be stored in a text column or a primary key at all. The operator's statement then
  // fails with PostgreSQL's own error, and none of its rows (not even the good ones in the
  // same statement) is stored or queued.
  struct Refused {
    std::string what;
    std::string values;  // one VALUES row (mchid, tenant_id, notify_url), SQL
    std::string sqlstate;
    std::string says;
  };
  const std::vector<Refused> refused = {
      {"NUL in notify_url (PostgreSQL text cannot hold 0x00)", "('3300000001', 'acme', E'https://a.example.com/\\x00')",
       "22021", "invalid byte sequence for encoding \"UTF8\": 0x00"},
      {"NUL via chr(0)", "('3300000002', 'acme', 'https://a.example.com/' || chr(0))", "54000",
       "null character not permitted"},
      {"invalid UTF-8", "('3300000003', 'acme', E'https://a.example.com/\\xff')", "22021",
       "invalid byte sequence for encoding \"UTF8\""},
      {"a mchid too large for the primary key index (10 kB, incompressible)",
       "((SELECT string_agg(md5(i::text), '') FROM generate_series(1, 320) AS i), 'acme', 'https://a.example.com/')",
       "54000", "index row requires"},
      {"NULL mchid", "(NULL, 'acme', 'https://a.example.com/')", "23502", "null value in column \"mchid\""},
      {"an unknown tenant", "('3300000004', 'nobody', 'https://a.example.com/')", "23503",
       "desired_callbacks_tenant_id_fkey"},
  };
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  for (const auto& row : refused) {
    INFO(row.what);
    pqxx::connection c(env.db().conninfo());
    pqxx::work tx(c);
    std::string sqlstate, message;
    try {
      // A good row first, in the same statement: it must not survive the bad one.
      tx.exec0(
          "INSERT INTO callbackd.desired_callbacks (mchid, tenant_id, notify_url) VALUES "
          "('3399999999', 'acme', 'https://good.example.com/'), " +
          row.values);
      tx.commit();
    } catch (const pqxx::sql_error& e) {
      sqlstate = e.sqlstate();
      message = e.what();
    }
    INFO("PostgreSQL said: " << message);
    CHECK(sqlstate == row.sqlstate);
    CHECK(contains(message, row.says));
    CHECK(env.count("SELECT count(*) FROM callbackd.desired_callbacks") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.pending_work") == 0);
  }
  // A non-digit mchid is NOT refused here (no CHECK): it is stored and shown as invalid (the
  // test above). The daemon has nothing to do and records nothing.
  env.start_sandbox();
  auto run = env.run_until_idle();
  CHECK(run.exit_status == 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.audit_log") == 0);
  CHECK(env.sandbox_requests().empty());
}

namespace {

// `callbackd --config CONFIG run --exit-when-idle`, as the account `as` names.
std::vector<std::string> daemon_run(const DaemonAccount& as, const std::string& config) {
  return as.command({"--config", config, "run", "--exit-when-idle"});
}

void copy_file_mode(const std::string& from, const std::string& to, mode_t mode) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  REQUIRE(::chmod(to.c_str(), mode) == 0);
}

}  // namespace

TEST_CASE("broken key files pause only their tenant, each with the file and the fix", "[e2e][bad-input][keys]") {
  Environment env;
  const DaemonAccount as;
  const std::string creds = env.work_dir() + "/creds";
  fs::create_directory(creds);
  const std::string keys = env.keys_dir();
  const std::string fixtures = std::string(CALLBACKD_SOURCE_DIR) + "/tests/data/keys/";
  // What the good tenant and the broken ones share, as an operator would install it.
  copy_file_mode(keys + "/merchant_1900000001.key", creds + "/merchant_1900000001.key", 0600);
  copy_file_mode(keys + "/merchant_1900000002.key", creds + "/merchant_1900000002.key", 0600);
  copy_file_mode(keys + "/platform_public.pem", creds + "/platform_public.pem", 0644);
  copy_file_mode(keys + "/platform_cert.pem", creds + "/platform_cert.pem", 0644);
  copy_file_mode(keys + "/merchant_1900000002.pem", creds + "/merchant_1900000002.pem", 0644);

  struct Case {
    std::string tenant;
    std::function<void()> make;  // creates the broken file (under creds/)
    std::optional<std::string> private_key_path, wechatpay_key_id, wechatpay_key_path;
    std::vector<std::string> says;  // parts of tenant_state.paused_reason: the file, what, the fix
  };
  const std::string platform_serial = [&] {
    std::string s = callbackd::test::read_file(keys + "/platform_cert_serial");
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }();
  std::vector<Case> cases = {
      {"missing",
       [] {},
       "absent.key",
       {},
       {},
       {creds + "/absent.key cannot be opened: No such file or directory",
        "put the file in the credentials directory"}},
      {"unreadable",
       [&] {
         // Root's file, private to root: the classic "forgot to chown it to the service user".
         copy_file_mode(keys + "/merchant_1900000002.key", creds + "/root_only.key", as.drop ? 0600 : 0000);
       },
       "root_only.key",
       {},
       {},
       {creds + "/root_only.key: cannot be opened: Permission denied"}},
      {"world_readable",
       [&] { copy_file_mode(keys + "/merchant_1900000002.key", creds + "/open.key", 0644); },
       "open.key",
       {},
       {},
       {creds + "/open.key: permissions 0644 are too open", "(fix: chmod 600 " + creds + "/open.key)"}},
      {"group_readable",
       [&] { copy_file_mode(keys + "/merchant_1900000002.key", creds + "/group.key", 0640); },
       "group.key",
       {},
       {},
       {creds + "/group.key: permissions 0640 are too open", "(fix: chmod 600 " + creds + "/group.key)"}},
      {"corrupt",
       [&] { copy_file_mode(fixtures + "truncated_private.pem", creds + "/corrupt.key", 0600); },
       "corrupt.key",
       {},
       {},
       {creds + "/corrupt.key: the PEM private key is corrupt", "download the key again"}},
      {"ec_key",
       [&] { copy_file_mode(fixtures + "ec_p256.pem", creds + "/ec.key", 0600); },
       "ec.key",
       {},
       {},
       {creds + "/ec.key: the private key is of type EC, WeChat Pay v3 needs RSA", "use the RSA 2048 key"}},
      {"certificate_as_key",
       [] {},
       "merchant_1900000002.pem",
       {},
       {},
       {creds + "/merchant_1900000002.pem: contains a certificate, not a private key",
        "use apiclient_key.pem, not apiclient_cert.pem"}},
      {"directory_as_key",
       [&] { fs::create_directory(creds + "/dir.key"); },
       "dir.key",
       {},
       {},
       {creds + "/dir.key: is not a regular file"}},
      {"fifo_as_key",
       [&] { REQUIRE(::mkfifo((creds + "/fifo.key").c_str(), 0600) == 0); },
       "fifo.key",
       {},
       {},
       {creds + "/fifo.key: is not a regular file"}},
      // A platform certificate registered under a serial that is not its own.
      {"serial_mismatch",
       [] {},
       {},
       "ABCDEF0123456789",
       "platform_cert.pem",
       {"is not the serial of its certificate (" + platform_serial + ")",
        "set wechatpay_key_id to " + platform_serial}},
      {"private_key_as_platform_key",
       [] {},
       {},
       {},
       "merchant_1900000002.key",
       {creds + "/merchant_1900000002.key: contains a private key where a public key or certificate is expected"}},
      {"own_certificate_as_platform_key",
       [] {},
       {},
       "PUB_KEY_ID_0100000000000000000000000000",
       "merchant_1900000002.pem",
       {"this is the public half of the tenant's own private key, not WeChat Pay's key"}},
      // Key paths open beneath the directory through no symlink, even one that stays inside.
      {"symlink_inside",
       [&] { fs::create_symlink("merchant_1900000002.key", creds + "/link.key"); },
       "link.key",
       {},
       {},
       {creds + "/link.key: 'link.key' is a symlink to merchant_1900000002.key",
        "name the file it points to: 'merchant_1900000002.key'"}},
  };
  // systemd >= 254's credentials: 0400, root's, the service's uid granted by an ACL (stat: 0440).
  const uid_t daemon_uid = as.drop ? as.uid : ::geteuid();
  const std::string acl_unavailable = callbackd::test::acl_unavailable_reason(creds);
  std::set<std::string> acl_files;  // root's (when the suite runs as root): left out of the chown below
  auto acl_copy = [&](const std::string& from, const std::string& name, const std::string& entries) {
    copy_file_mode(from, creds + "/" + name, 0400);
    const auto set = callbackd::test::setfacl("-m " + entries, creds + "/" + name);
    INFO(set.output);
    REQUIRE(set.status == 0);
    acl_files.insert(name);
  };
  const std::string daemon_entry = "u:" + std::to_string(daemon_uid) + ":r";
  if (acl_unavailable.empty()) {
    cases.push_back({"acl_another_user",
                     [&] { acl_copy(keys + "/merchant_1900000002.key", "acl_other.key", daemon_entry + ",u:4343:r"); },
                     "acl_other.key",
                     {},
                     {},
                     {creds + "/acl_other.key: permissions 0440 are too open: its ACL grants user:4343:r--",
                      "(fix: setfacl -x u:4343 " + creds + "/acl_other.key)"}});
    cases.push_back({"acl_named_group",
                     [&] { acl_copy(keys + "/merchant_1900000002.key", "acl_group.key", daemon_entry + ",g:4343:r"); },
                     "acl_group.key",
                     {},
                     {},
                     {creds + "/acl_group.key: permissions 0440 are too open: its ACL grants group:4343:r--",
                      "(fix: setfacl -x g:4343 " + creds + "/acl_group.key)"}});
  } else {
    WARN("ACL cases skipped, ACLs cannot be tested here: " << acl_unavailable);
  }

  env.add_tenant(TenantSpec("good", "1900000001"));
  env.add_rows("good", 1, 10);
  if (acl_unavailable.empty()) {
    // Both key files in the ACL form, granting the daemon's own account: it converges.
    acl_copy(keys + "/merchant_1900000001.key", "acl_granted.key", daemon_entry);
    acl_copy(keys + "/platform_public.pem", "acl_platform_public.pem", daemon_entry);
    TenantSpec granted("acl_granted", "1900000001");
    granted.private_key_path = "acl_granted.key";
    granted.wechatpay_key_path = "acl_platform_public.pem";
    env.add_tenant(granted);
    env.add_rows("acl_granted", 2, 3);
  }
  int block = 10;
  for (const auto& c : cases) {
    c.make();
    TenantSpec t(c.tenant, "1900000002");  // the sandbox would accept this caller's signature
    t.private_key_path = c.private_key_path.value_or("merchant_1900000002.key");
    t.wechatpay_key_id = c.wechatpay_key_id;
    t.wechatpay_key_path = c.wechatpay_key_path;
    env.add_tenant(t);
    env.add_rows(c.tenant, block++, 2);
  }
  // The daemon's account owns what it must read; root_only.key stays root's.
  if (as.drop) {
    for (const auto& entry : fs::directory_iterator(creds))
      if (entry.path().filename() != "root_only.key" && acl_files.count(entry.path().filename().string()) == 0)
        REQUIRE(::lchown(entry.path().c_str(), as.uid, as.gid) == 0);
    REQUIRE(::chmod(env.work_dir().c_str(), 0755) == 0);
  }
  env.start_sandbox();
  DaemonConfigOptions options;
  options.credentials_dir_path = creds;
  options.ca_file = as.ca_file();
  const std::string config = env.write_daemon_config("", options);
  REQUIRE(::chmod(config.c_str(), 0644) == 0);
  auto run = callbackd::test::run_process_for(daemon_run(as, config), std::chrono::seconds{90});
  INFO(run.output.substr(0, 6000));
  REQUIRE(run.exit_status == 2);  // idle with work left: the paused tenants (cli.md)

  // The others run: the good tenant converged, and nothing was sent for a broken one.
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'good' AND state = 'in_sync'") == 10);
  if (acl_unavailable.empty())
    CHECK(env.count(
              "SELECT count(*) FROM callbackd.sync_status WHERE tenant_id = 'acl_granted' AND state = 'in_sync'") == 3);
  CHECK(env.sandbox_stats()["callers"].count("1900000002") == 0);
  for (const auto& c : cases) {
    INFO("tenant " << c.tenant);
    CHECK(one(env, "SELECT string_agg(DISTINCT state, ',') FROM callbackd.sync_status WHERE tenant_id = $1",
              c.tenant) == "paused");
    const std::string reason =
        one(env, "SELECT paused_reason FROM callbackd.tenant_state WHERE tenant_id = $1", c.tenant);
    INFO("paused_reason: " << reason);
    CHECK(one(env, "SELECT error_code FROM callbackd.tenant_state WHERE tenant_id = $1", c.tenant) ==
          "CREDENTIALS_INVALID");
    CHECK(contains(reason, "tenant '" + c.tenant + "'"));
    for (const auto& part : c.says) CHECK(contains(reason, part));
    // One tenant-wide audit row says why; no row of the tenant was attempted.
    CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE tenant_id = '" + c.tenant +
                    "' AND mchid IS NULL AND error_code = 'CREDENTIALS_INVALID'") == 1);
    CHECK(env.count("SELECT count(*) FROM callbackd.audit_log WHERE tenant_id = '" + c.tenant +
                    "' AND mchid IS NOT NULL") == 0);
  }
}

TEST_CASE("broken daemon files stop start-up naming the file and the fix, with nothing written",
          "[e2e][bad-input][startup]") {
  Environment env;
  env.add_tenant(TenantSpec("acme"));
  env.add_rows("acme", 1, 5);
  env.start_sandbox();
  const DaemonAccount as;
  const std::string dir = env.work_dir() + "/files";
  fs::create_directory(dir);
  // Start-up opens the credentials directory before the CA bundle: both where the account can.
  const std::string creds = dir + "/creds";
  fs::create_directory(creds);
  DaemonConfigOptions options;
  options.credentials_dir_path = creds;
  options.ca_file = as.ca_file();
  const std::string good_config = env.write_daemon_config("", options);
  const std::string config_text = callbackd::test::read_file(good_config);
  const std::string ca = as.ca_file();
  auto config_with_ca = [&](const std::string& ca_path) {
    std::string text = config_text;
    text.replace(text.find(ca), ca.size(), ca_path);
    return text;
  };
  auto write = [](const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    REQUIRE(::chmod(path.c_str(), mode) == 0);
  };
  struct Case {
    std::string what;
    std::function<std::string()> make;  // writes what it needs, returns the --config path
    std::vector<std::string> says;
  };
  auto config_with_credentials_dir = [&](const std::string& path) {
    std::string text = config_text;
    const std::string key = "credentials_dir: " + creds;
    text.replace(text.find(key), key.size(), "credentials_dir: " + path);
    return text;
  };
  const std::vector<Case> cases = {
      {"config missing", [&] { return dir + "/absent.yaml"; }, {dir + "/absent.yaml", "fix:"}},
      {"config unreadable (root's, mode 0600)",
       [&] {
         write(dir + "/root_only.yaml", config_text, as.drop ? 0600 : 0000);
         return dir + "/root_only.yaml";
       },
       {dir + "/root_only.yaml", "Permission denied"}},
      {"config is a directory",
       [&] {
         fs::create_directory(dir + "/config.d");
         return dir + "/config.d";
       },
       {dir + "/config.d: is a directory, not a config file (fix: pass --config FILE"}},
      {"config corrupt (not YAML)",
       [&] {
         write(dir + "/corrupt.yaml", "database: {url: \"host=/tmp\"\nwechatpay: [\n", 0644);
         return dir + "/corrupt.yaml";
       },
       {dir + "/corrupt.yaml"}},
      // Cut inside the database URL's quotes, as a copy interrupted mid-write leaves it. (A cut
      // between two keys leaves valid YAML that falls back to defaults, e.g. the real WeChat
      // Pay URL: never tried here, the test must only talk to loopback.)
      {"config truncated mid-value",
       [&] {
         write(dir + "/half.yaml", config_text.substr(0, config_text.find("url: \"") + 10), 0644);
         return dir + "/half.yaml";
       },
       {dir + "/half.yaml"}},
      {"CA file missing",
       [&] {
         write(dir + "/ca-missing.yaml", config_with_ca(dir + "/absent-ca.pem"), 0644);
         return dir + "/ca-missing.yaml";
       },
       {"wechatpay.ca_file: cannot load CA bundle '" + dir + "/absent-ca.pem': No such file or directory",
        "point it to a readable PEM file of CA certificates"}},
      {"CA file unreadable (root's, mode 0600)",
       [&] {
         fs::copy_file(ca, dir + "/root-ca.pem");
         REQUIRE(::chmod((dir + "/root-ca.pem").c_str(), as.drop ? 0600 : 0000) == 0);
         write(dir + "/ca-unreadable.yaml", config_with_ca(dir + "/root-ca.pem"), 0644);
         return dir + "/ca-unreadable.yaml";
       },
       {"wechatpay.ca_file: cannot load CA bundle '" + dir + "/root-ca.pem': Permission denied",
        "point it to a readable PEM file of CA certificates"}},
      {"CA file corrupt",
       [&] {
         write(dir + "/corrupt-ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0644);
         write(dir + "/ca-corrupt.yaml", config_with_ca(dir + "/corrupt-ca.pem"), 0644);
         return dir + "/ca-corrupt.yaml";
       },
       {"wechatpay.ca_file", dir + "/corrupt-ca.pem", "point it to a readable PEM file of CA certificates"}},
      {"CA file is a private key",
       [&] {
         fs::copy_file(env.keys_dir() + "/ca.key", dir + "/ca-key.pem");
         write(dir + "/ca-key.yaml", config_with_ca(dir + "/ca-key.pem"), 0644);
         return dir + "/ca-key.yaml";
       },
       {"wechatpay.ca_file", dir + "/ca-key.pem", "point it to a readable PEM file of CA certificates"}},
      {"credentials_dir missing",
       [&] {
         write(dir + "/creds-missing.yaml", config_with_credentials_dir(dir + "/no-keys"), 0644);
         return dir + "/creds-missing.yaml";
       },
       {"credentials_dir: " + dir + "/no-keys cannot be opened: No such file or directory", "(fix: create it"}},
      {"credentials_dir is a file",
       [&] {
         write(dir + "/creds-file.yaml", config_with_credentials_dir(dir + "/creds-file.yaml"), 0644);
         return dir + "/creds-file.yaml";
       },
       {"credentials_dir: " + dir + "/creds-file.yaml is not a directory", "(fix: create it"}},
  };
  if (as.drop) {
    REQUIRE(::chmod(env.work_dir().c_str(), 0755) == 0);
    REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  }
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string config = c.make();
    if (as.drop)  // what the daemon's account must be able to read is its own; root's files stay root's
      for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename();
        if (name != "root_only.yaml" && name != "root-ca.pem")
          REQUIRE(::lchown(entry.path().c_str(), as.uid, as.gid) == 0);
      }
    const auto started = std::chrono::steady_clock::now();
    auto run = callbackd::test::run_process_for(daemon_run(as, config), std::chrono::seconds{30});
    INFO(run.output);
    CHECK(run.exit_status == 78);  // EX_CONFIG
    for (const auto& part : c.says) CHECK(contains(run.output, part));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{10});  // refused at once, no retry loop
    // Nothing half-done: no lease taken, no row touched, nothing sent.
    CHECK(env.count("SELECT count(*) FROM callbackd.audit_log") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.sub_merchant_state") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.tenant_state") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.tenant_leases") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.pending_work WHERE claimed_by IS NOT NULL") == 0);
    CHECK(env.count("SELECT count(*) FROM callbackd.pending_work") == 5);
  }
  CHECK(env.sandbox_requests().empty());
  // Control: with the intact config the daemon does the work (as the test's own account: the
  // fixture's keys are root's; the key-file test shows the unprivileged account converging).
  auto run = env.run_until_idle(std::chrono::seconds{60});
  INFO(run.output);
  CHECK(run.exit_status == 0);
  CHECK(env.count("SELECT count(*) FROM callbackd.sync_status WHERE state = 'in_sync'") == 5);
}
