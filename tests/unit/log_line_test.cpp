// Log lines: events (a name plus typed fields) rendered once as logfmt or JSON (one valid
// record per line whatever the bytes, no value able to add a field), journald priorities,
// secrets removed, values bounded, repeats limited.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <set>
#include <spdlog/spdlog.h>

#include "app/logging.h"
#include "core/logging/event.h"
#include "core/logging/log_line.h"

using namespace callbackd::logging;

namespace {

// The real logging path (app/logging.cpp's writer), installed as the process's event writer
// for the scope, each line captured.
struct CapturedLog {
  std::vector<std::string> lines;
  callbackd::app::LineLogger log;
  explicit CapturedLog(const callbackd::LogConfig& config, bool journald = false)
      : log(callbackd::app::make_line_logger(config, journald, [this](const std::string& l) { lines.push_back(l); })) {
    set_writer(log.events.get());
  }
  ~CapturedLog() { set_writer(nullptr); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
};

callbackd::LogConfig config_of(callbackd::LogConfig::Format format, std::string level = "info") {
  callbackd::LogConfig config;
  config.format = format;
  config.level = std::move(level);
  return config;
}

}  // namespace

TEST_CASE("a logfmt line parses back into exactly the fields it was rendered from", "[logging]") {
  const Fields f{{"event", "x"},
                 {"tenant", "t1"},
                 {"n", 42},
                 {"ok", true},
                 {"error", "bad \"thing\" here, a=b\n\x01\\"},
                 {"empty", ""},
                 {"utf8", "系统错误"},
                 {"reshaping", "\u202Eexe \u2028 \xff"}};
  for (const bool journald : {false, true}) {
    const auto parsed = parse_logfmt(render_line({false, journald}, Level::info, "T", f));
    REQUIRE(parsed.has_value());
    Fields expected = journald ? Fields{} : Fields{{"ts", "T"}};
    expected.push_back({"level", "info"});
    for (const auto& field : f) expected.push_back({field.key, field.value});  // all text once parsed
    CHECK(*parsed == expected);
  }
  // Not what the writer writes: refused rather than guessed at.
  CHECK_FALSE(parse_logfmt("no fields here").has_value());
  CHECK_FALSE(parse_logfmt(R"(event=x error="unterminated)").has_value());
  CHECK_FALSE(parse_logfmt("event=x trailing words").has_value());
  CHECK_FALSE(parse_logfmt(R"(event=x error="a"b)").has_value());
  CHECK_FALSE(parse_logfmt(R"(event=x error=a"b)").has_value());
  CHECK(parse_logfmt("")->empty());
}

TEST_CASE("values are typed: numbers and booleans bare in logfmt and JSON numbers", "[logging]") {
  const Fields f{{"event", "x"},
                 {"count", std::size_t{3}},
                 {"http_status", 404},
                 {"delta", -7},
                 {"held_ms", std::chrono::seconds{2}},
                 {"ratio", 0.25},
                 {"ok", false},
                 {"code", "404"}};
  CHECK(render_line({}, Level::info, "T", f) ==
        "ts=T level=info event=x count=3 http_status=404 delta=-7 held_ms=2000 ratio=0.25 ok=false code=404");
  const auto j = nlohmann::json::parse(render_line({true, false}, Level::info, "T", f));
  CHECK(j["count"] == 3);
  CHECK(j["http_status"] == 404);
  CHECK(j["delta"] == -7);
  CHECK(j["held_ms"] == 2000);
  CHECK(j["ratio"] == 0.25);
  CHECK(j["ok"] == false);
  CHECK(j["code"] == "404");  // text stays text, even when it looks like a number
}

TEST_CASE("logfmt values are quoted and escaped only when needed", "[logging]") {
  CHECK(logfmt_value("simple") == "simple");
  CHECK(logfmt_value("") == "\"\"");
  CHECK(logfmt_value("two words") == "\"two words\"");
  CHECK(logfmt_value("q\"uote") == "\"q\\\"uote\"");
  CHECK(logfmt_value("line\nbreak") == "\"line\\nbreak\"");
  CHECK(logfmt_value(std::string("nul\0x", 5)) == "\"nul\\x00x\"");
  // UTF-8 stays readable; bytes that are not UTF-8 and characters that reshape the text do not.
  CHECK(logfmt_value("系统错误") == "\"系统错误\"");
  CHECK(logfmt_value("bad \xff\xc3") == "\"bad \\xff\\xc3\"");
  CHECK(logfmt_value("\u202Egnp.exe") == "\"\\u202egnp.exe\"");
  CHECK(logfmt_value("a\u0085b") == "\"a\\u0085b\"");
  CHECK(logfmt_value("\xe2\x80") == "\"\\xe2\\x80\"");  // a truncated sequence
  CHECK(logfmt_value("\xc0\xaf") == "\"\\xc0\\xaf\"");  // an overlong '/'
  CHECK(render_line({true, false}, Level::info, "T", {{"v", "\u202Ex"}}) ==
        R"({"ts":"T","level":"info","v":"\u202ex"})");
}

TEST_CASE("long values are cut, never inside a character, and say how long they were", "[logging]") {
  CHECK(clip("short", 10) == "short");
  CHECK(clip(std::string(100, '7'), 10) == "7777777777...(100 bytes)");
  // "系" is 3 bytes: a cut at 4 or 5 bytes keeps one whole character.
  CHECK(clip("系统错误", 4) == "系...(12 bytes)");
  CHECK(clip("系统错误", 5) == "系...(12 bytes)");
  CHECK(clip("系统错误", 6) == "系统...(12 bytes)");
  // Ids from SQL: 64 bytes at most (a 200 kB mchid), otherwise verbatim: the writer escapes them.
  CHECK(log_id("2000000001") == "2000000001");
  CHECK(log_id("1\nlevel=error event=forged") == "1\nlevel=error event=forged");
  CHECK(log_id(std::string(200'000, '7')).size() < 100);
  // The writer's own bound: every text value, whatever the call site passed; numbers untouched.
  Fields f{{"event", "x"}, {"error", std::string(1 << 20, 'e')}, {"n", 1}};
  bound(f);
  CHECK(f[1].value.size() < kMaxValueBytes + 32);
  CHECK(f[1].value.starts_with(std::string(1000, 'e')));
  CHECK(f[1].value.find("(1048576 bytes)") != std::string::npos);
  CHECK(f[2].value == "1");
}

TEST_CASE("a JSON line is valid JSON whatever the message holds", "[logging]") {
  const Fields f{{"event", "attempt_failed"},
                 {"tenant", "t1"},
                 {"mchid", "2000000001"},
                 {"request_id", "08F7-1"},
                 {"error", "quote \" backslash \\ newline \n bad utf8 \xff\xfe end"}};
  const std::string line = render_line({true, false}, Level::warn, "2026-01-01T00:00:00.000Z", f);
  CHECK(line.find('\n') == std::string::npos);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["level"] == "warn");
  CHECK(j["ts"] == "2026-01-01T00:00:00.000Z");
  CHECK(j["tenant"] == "t1");
  CHECK(j["mchid"] == "2000000001");
  CHECK(j["request_id"] == "08F7-1");
  CHECK(j["error"].get<std::string>().find("newline \n bad") != std::string::npos);
}

TEST_CASE("under journald lines carry the syslog priority and no timestamp", "[logging]") {
  const Fields f{{"event", "x"}};
  CHECK(render_line({false, true}, Level::error, "T", f) == "<3>level=error event=x");
  CHECK(render_line({false, true}, Level::warn, "T", f) == "<4>level=warn event=x");
  CHECK(render_line({false, true}, Level::info, "T", f) == "<6>level=info event=x");
  CHECK(render_line({false, true}, Level::debug, "T", f) == "<7>level=debug event=x");
  CHECK(render_line({false, true}, Level::critical, "T", f) == "<2>level=critical event=x");
  CHECK(render_line({true, true}, Level::error, "T", f) == R"(<3>{"level":"error","event":"x"})");
  CHECK(render_line({false, false}, Level::info, "T", f) == "ts=T level=info event=x");
}

TEST_CASE("secrets are redacted from text and from secret-named fields", "[logging]") {
  const std::string auth =
      R"(WECHATPAY2-SHA256-RSA2048 mchid="1900000001",nonce_str="abc",signature="S3CR3TSIG==",timestamp="1",serial_no="AB")";
  CHECK(redact("Authorization: " + auth + "\r\nAccept: application/json").find("S3CR3TSIG") == std::string::npos);
  CHECK(redact("Authorization: " + auth + "\r\nAccept: application/json").find("Accept: application/json") !=
        std::string::npos);
  CHECK(redact("header " + auth).find("S3CR3TSIG") == std::string::npos);
  CHECK(redact(R"(signature="S3CR3TSIG==" next)") == R"(signature="[redacted]" next)");
  CHECK(redact("Wechatpay-Signature: S3CR3TSIG==\nx").find("S3CR3TSIG") == std::string::npos);
  CHECK(redact("host=db password=hunter2 user=x") == "host=db password=[redacted] user=x");
  const std::string pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
  CHECK(redact("key: " + pem + " done") == "key: [redacted private key] done");
  CHECK(redact("-----BEGIN RSA PRIVATE KEY-----\nMIIEvQ truncated") == "[redacted private key]");
  // A certificate is not a secret.
  const std::string cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
  CHECK(redact(cert) == cert);
  Fields f{{"event", "x"}, {"authorization", "anything"}, {"private_key", "k"}, {"tenant", "t"}};
  redact(f);
  CHECK(f == Fields{{"event", "x"}, {"authorization", "[redacted]"}, {"private_key", "[redacted]"}, {"tenant", "t"}});
}

TEST_CASE("the same error is written at most `burst` times a window, then summarised", "[logging]") {
  RepeatLimiter limiter(3, std::chrono::seconds{60});
  const auto t0 = RepeatLimiter::Clock::time_point{} + std::chrono::hours{1};
  const std::string key =
      RepeatLimiter::key_of({{"event", "attempt_failed"}, {"tenant", "t1"}, {"code", "SYSTEM_ERROR"}});
  CHECK(key == "attempt_failed|t1|SYSTEM_ERROR");
  CHECK(RepeatLimiter::key_of({{"event", "tenant_loaded"}, {"tenant", "t1"}}).empty());
  int emitted = 0;
  for (int i = 0; i < 100; ++i) emitted += limiter.admit(key, t0 + std::chrono::milliseconds{i}).emit;
  CHECK(emitted == 3);
  // Another tenant's error is limited separately; lines without an error never are.
  CHECK(limiter.admit("attempt_failed|t2|SYSTEM_ERROR", t0).emit);
  for (int i = 0; i < 100; ++i) CHECK(limiter.admit("", t0).emit);
  // After the window: the count of dropped lines is reported once, and lines flow again.
  const auto v = limiter.admit(key, t0 + std::chrono::seconds{61});
  CHECK(v.emit);
  CHECK(v.suppressed_before == 97);
  CHECK(limiter.admit(key, t0 + std::chrono::seconds{62}).suppressed_before == 0);
  // flush() reports windows that ended with drops, without waiting for the next line.
  for (int i = 0; i < 10; ++i) limiter.admit(key, t0 + std::chrono::seconds{63});
  CHECK(limiter.flush(t0 + std::chrono::seconds{90}).empty());
  const auto flushed = limiter.flush(t0 + std::chrono::seconds{200});
  REQUIRE(flushed.size() == 1);
  CHECK(flushed[0] == std::pair<std::string, std::uint64_t>{key, 9});
}

TEST_CASE("the logging path writes no secret from a logged request", "[logging]") {
  std::vector<std::string> lines;
  for (auto format : {callbackd::LogConfig::Format::logfmt, callbackd::LogConfig::Format::json}) {
    CapturedLog log(config_of(format, "debug"));
    // What a careless call site might log: the request as sent, headers and all.
    const std::string request =
        "POST /v3/marketing/favor/callbacks HTTP/1.1\r\nHost: api.mch.weixin.qq.com\r\n"
        "Authorization: WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"n\",signature=\"c2VjcmV0c2ln\","
        "timestamp=\"1700000000\",serial_no=\"ABC\"\r\nContent-Type: application/json\r\n\r\n{\"mchid\":\"2000000001\"}";
    warn("request_dump", {{"tenant", "t1"}, {"request", request}});
    warn(
        "key_dump",
        {{"tenant", "t1"},
         {"key",
          "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ\n-----END PRIVATE KEY-----"}});
    info("x", {{"authorization", "WECHATPAY2-SHA256-RSA2048 whatever"}, {"signature", "c2VjcmV0c2ln"}});
    // Text handed to spdlog directly is redacted the same way.
    log.log.text->warn("dump: {}", request);
    lines.insert(lines.end(), log.lines.begin(), log.lines.end());
  }
  REQUIRE(lines.size() == 8);
  for (const auto& l : lines) {
    INFO(l);
    CHECK(l.find("c2VjcmV0c2ln") == std::string::npos);
    CHECK(l.find("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ") == std::string::npos);
    CHECK(l.find('\n') == std::string::npos);
  }
  // The rest of the request is still there to debug with.
  CHECK(lines[0].find("2000000001") != std::string::npos);
  CHECK(nlohmann::json::parse(lines[4])["request"].get<std::string>().find("Content-Type: application/json") !=
        std::string::npos);
}

TEST_CASE("the logging path drops repeats of one error beyond ten a minute", "[logging]") {
  CapturedLog log(config_of(callbackd::LogConfig::Format::logfmt));
  for (int i = 0; i < 50; ++i)
    info("attempt_failed",
         {{"tenant", "t1"}, {"mchid", std::to_string(2000000000 + i)}, {"code", "SYSTEM_ERROR"}, {"error", "boom"}});
  CHECK(log.lines.size() == 10);
  CHECK(log.lines[0].find("mchid=2000000000") != std::string::npos);
}

TEST_CASE("the logging path writes only events at or above log.level", "[logging]") {
  CapturedLog log(config_of(callbackd::LogConfig::Format::logfmt, "warn"));
  debug("applied", {{"tenant", "t1"}});
  info("tenant_loaded", {{"tenant", "t1"}});
  warn("tenant_paused", {{"tenant", "t1"}});
  error("database_error", {{"error", "e"}});
  REQUIRE(log.lines.size() == 2);
  CHECK(log.lines[0].find("level=warn event=tenant_paused tenant=t1") != std::string::npos);
  CHECK(log.lines[1].find("level=error event=database_error error=e") != std::string::npos);
}

TEST_CASE("text handed to spdlog is one record, its whole text one value", "[logging]") {
  // Whatever calls spdlog directly (no event API) cannot reshape a line either.
  CapturedLog log(config_of(callbackd::LogConfig::Format::logfmt));
  log.log.text->warn(R"(event=x" event=forged tenant=evil)");
  REQUIRE(log.lines.size() == 1);
  const auto fields = parse_logfmt(log.lines[0]);
  REQUIRE(fields.has_value());
  REQUIRE(fields->size() == 3);
  CHECK((*fields)[1] == Field{"level", "warn"});
  CHECK((*fields)[2] == Field{"msg", R"(event=x" event=forged tenant=evil)"});
}

namespace {

// Text from outside the daemon that tries to reshape a line: WeChat Pay's error message, an
// exception text, a row's id.
std::vector<std::string> hostile_values() {
  return {
      R"(x" event=forged tenant=evil)",
      "a\nts=2026-01-01T00:00:00.000Z level=error event=forged tenant=evil",
      "\x1b[31mred\x1b[0m event=forged",
      std::string("nul\0 event=forged tenant=evil", 29),
      "\xff\xfe not UTF-8\xc3 event=forged",
      // Valid UTF-8 that reshapes what a reader sees: a bidi override, NEL (U+0085, a line
      // break to some tools), the line separator U+2028.
      "\u202Egnp.exe event=forged",
      "a\u0085ts=2026-01-01T00:00:00.000Z level=error event=forged",
      "a\u2028event=forged",
      R"(\" event=forged tenant=evil \\)",
      std::string(1 << 20, 'a') + R"(" event=forged tenant=evil)",
  };
}

// One attempt_failed whose error text is `value`, through the real logging path.
std::vector<std::string> log_hostile(callbackd::LogConfig::Format format, const std::string& value) {
  CapturedLog log(config_of(format));
  info("attempt_failed", {{"tenant", "t1"}, {"code", "SYSTEM_ERROR"}, {"error", value}});
  return log.lines;
}

}  // namespace

TEST_CASE("text from outside cannot add a field to a log line", "[logging]") {
  const std::set<std::string> intended{"ts", "level", "event", "tenant", "code", "error"};
  for (const auto& value : hostile_values()) {
    INFO("value: " << value.substr(0, 60));
    {
      const auto lines = log_hostile(callbackd::LogConfig::Format::logfmt, value);
      REQUIRE(lines.size() == 1);
      const std::string& line = lines[0];
      INFO("logfmt: " << line.substr(0, 300));
      CHECK(line.size() < 4096);  // a 1 MB value is cut
      CHECK(line.find('\n') == std::string::npos);
      CHECK(line.find('\x1b') == std::string::npos);
      CHECK(line.find('\0') == std::string::npos);
      CHECK(line.find("\u202E") == std::string::npos);
      CHECK(line.find("\u0085") == std::string::npos);
      CHECK(line.find("\u2028") == std::string::npos);
      CHECK(line.find('\xff') == std::string::npos);  // not UTF-8: escaped as \xff
      const auto fields = parse_logfmt(line);
      REQUIRE(fields.has_value());
      std::multiset<std::string> keys;
      for (const auto& f : *fields) keys.insert(f.key);
      CHECK(keys == std::multiset<std::string>(intended.begin(), intended.end()));
      for (const auto& f : *fields) {
        if (f.key == "event") CHECK(f.value == "attempt_failed");
        if (f.key == "tenant") CHECK(f.value == "t1");
        if (f.key == "code") CHECK(f.value == "SYSTEM_ERROR");
        // The text itself is all there (escaped), or its first kilobyte.
        if (f.key == "error" && value.size() < 1000) CHECK(f.value == value);
        if (f.key == "error" && value.size() >= 1000) CHECK(f.value.starts_with(value.substr(0, 1000)));
      }
    }
    {
      const auto lines = log_hostile(callbackd::LogConfig::Format::json, value);
      REQUIRE(lines.size() == 1);
      INFO("json: " << lines[0].substr(0, 300));
      CHECK(lines[0].size() < 4096);
      CHECK(lines[0].find("\u202E") == std::string::npos);
      CHECK(lines[0].find("\u0085") == std::string::npos);
      CHECK(lines[0].find("\u2028") == std::string::npos);
      const auto j = nlohmann::json::parse(lines[0]);
      std::set<std::string> keys;
      for (const auto& [k, v] : j.items()) keys.insert(k);
      CHECK(keys == intended);
      CHECK(j["event"] == "attempt_failed");
      CHECK(j["tenant"] == "t1");
      CHECK(j["code"] == "SYSTEM_ERROR");
      if (value.find('\xff') == std::string::npos && value.size() < 1000) CHECK(j["error"] == value);
    }
  }
}
