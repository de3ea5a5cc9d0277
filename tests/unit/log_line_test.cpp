// Log lines: fields from the daemon's `event=... key=value` messages, logfmt and JSON
// rendering (one valid record per line whatever the bytes), journald priorities, secrets
// removed, repeats limited.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <set>
#include <spdlog/spdlog.h>

#include "app/logging.h"
#include "core/logging/log_line.h"

using namespace callbackd::logging;

TEST_CASE("messages are split into fields", "[logging]") {
  CHECK(parse_message("event=started instance=h:1 version=0.1.0") ==
        Fields{{"event", "started"}, {"instance", "h:1"}, {"version", "0.1.0"}});
  // Free text in quotes may itself hold quotes and '=': the value ends at `" key=` or the end.
  CHECK(parse_message(R"(event=x error="bad "thing" here, a=b" tenant=t1)") ==
        Fields{{"event", "x"}, {"error", R"(bad "thing" here, a=b)"}, {"tenant", "t1"}});
  CHECK(parse_message("no fields here") == Fields{{"msg", "no fields here"}});
  CHECK(parse_message(R"(event=x error="unterminated)") == Fields{{"event", "x"}, {"error", "unterminated"}});
  CHECK(parse_message("event=x trailing words") == Fields{{"event", "x"}, {"msg", "trailing words"}});
  CHECK(parse_message("").empty());
}

TEST_CASE("logfmt values are quoted and escaped only when needed", "[logging]") {
  CHECK(logfmt_value("simple") == "simple");
  CHECK(logfmt_value("") == "\"\"");
  CHECK(logfmt_value("two words") == "\"two words\"");
  CHECK(logfmt_value("q\"uote") == "\"q\\\"uote\"");
  CHECK(logfmt_value("line\nbreak") == "\"line\\nbreak\"");
  CHECK(logfmt_value(std::string("nul\0x", 5)) == "\"nul\\x00x\"");
}

TEST_CASE("an id from SQL is one bare token that cannot forge a field", "[logging]") {
  CHECK(log_token("2000000001") == "2000000001");
  CHECK(log_token("acme-cn_1") == "acme-cn_1");
  // A sub-merchant id written to forge a second event, with a quote, '=', a backslash, a
  // control byte, a bidi override (U+202E, 3 bytes) and nothing at all:
  CHECK(log_token("1\nlevel=error event=forged") == "1?level?error?event?forged");
  CHECK(log_token("a\"b\\c\x01" "d\u202E") == "a?b?c?d???");
  CHECK(log_token("") == "?");
  CHECK(log_token(std::string(100, '7'), 10) == "7777777777...");
  // In a message, the token keeps every other field where it was.
  const std::string message = "event=row_invalid tenant=t1 mchid=" + log_token("1 event=forged\"x") + " error=\"e\"";
  CHECK(parse_message(message) ==
        Fields{{"event", "row_invalid"}, {"tenant", "t1"}, {"mchid", "1?event?forged?x"}, {"error", "e"}});
}

TEST_CASE("a JSON line is valid JSON whatever the message holds", "[logging]") {
  const Fields f{{"event", "attempt_failed"}, {"tenant", "t1"}, {"mchid", "2000000001"},
                 {"request_id", "08F7-1"}, {"error", "quote \" backslash \\ newline \n bad utf8 \xff\xfe end"}};
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
  const std::string key = RepeatLimiter::key_of({{"event", "attempt_failed"}, {"tenant", "t1"}, {"code", "SYSTEM_ERROR"}});
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
  callbackd::LogConfig config;
  config.level = "debug";
  for (auto format : {callbackd::LogConfig::Format::logfmt, callbackd::LogConfig::Format::json}) {
    config.format = format;
    auto logger = callbackd::app::make_line_logger(config, false, [&](const std::string& l) { lines.push_back(l); });
    // What a careless call site might log: the request as sent, headers and all.
    const std::string request =
        "POST /v3/marketing/favor/callbacks HTTP/1.1\r\nHost: api.mch.weixin.qq.com\r\n"
        "Authorization: WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"n\",signature=\"c2VjcmV0c2ln\","
        "timestamp=\"1700000000\",serial_no=\"ABC\"\r\nContent-Type: application/json\r\n\r\n{\"mchid\":\"2000000001\"}";
    logger->warn("event=request_dump tenant=t1 request=\"{}\"", request);
    logger->warn("event=key_dump tenant=t1 key=\"{}\"",
                 "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ\n-----END PRIVATE KEY-----");
    logger->info("event=x authorization=\"WECHATPAY2-SHA256-RSA2048 whatever\" signature=c2VjcmV0c2ln");
  }
  REQUIRE(lines.size() == 6);
  for (const auto& l : lines) {
    INFO(l);
    CHECK(l.find("c2VjcmV0c2ln") == std::string::npos);
    CHECK(l.find("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ") == std::string::npos);
    CHECK(l.find('\n') == std::string::npos);
  }
  // The rest of the request is still there to debug with.
  CHECK(lines[0].find("2000000001") != std::string::npos);
  CHECK(nlohmann::json::parse(lines[3])["request"].get<std::string>().find("Content-Type: application/json") !=
        std::string::npos);
}

TEST_CASE("the logging path drops repeats of one error beyond ten a minute", "[logging]") {
  std::vector<std::string> lines;
  callbackd::LogConfig config;
  auto logger = callbackd::app::make_line_logger(config, false, [&](const std::string& l) { lines.push_back(l); });
  for (int i = 0; i < 50; ++i)
    logger->info("event=attempt_failed tenant=t1 mchid={} code=SYSTEM_ERROR error=\"boom\"", 2000000000 + i);
  CHECK(lines.size() == 10);
  CHECK(lines[0].find("mchid=2000000000") != std::string::npos);
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
      R"(\" event=forged tenant=evil \\)",
      std::string(1 << 20, 'a') + R"(" event=forged tenant=evil)",
  };
}

// One attempt_failed whose error text is `value`, through the real logging path.
std::vector<std::string> log_hostile(callbackd::LogConfig::Format format, const std::string& value) {
  std::vector<std::string> lines;
  callbackd::LogConfig config;
  config.format = format;
  auto logger = callbackd::app::make_line_logger(config, false, [&](const std::string& l) { lines.push_back(l); });
  logger->info("event=attempt_failed tenant={} code={} error=\"{}\"", "t1", "SYSTEM_ERROR", value);
  return lines;
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
        if (f.key == "error" && value.size() >= 1000) CHECK(f.value.rfind(value.substr(0, 1000), 0) == 0);
      }
    }
    {
      const auto lines = log_hostile(callbackd::LogConfig::Format::json, value);
      REQUIRE(lines.size() == 1);
      INFO("json: " << lines[0].substr(0, 300));
      CHECK(lines[0].size() < 4096);
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
