// The YAML reader the daemon's config and the sandbox's share (core/yaml_reader.h): every
// problem names the source and the key path, and the same mistake reads the same in both.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/yaml_reader.h"

using namespace callbackd;
using callbackd::yaml_reader::Reader;
using std::chrono::milliseconds;

namespace {

// Every problem of a reader as "where: what (fix: ...)".
std::vector<std::string> lines(const Reader& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems()) out.push_back(p.to_string());
  return out;
}

YAML::Node scalar(const std::string& text) { return yaml_reader::load("v: " + text, "test")["v"]; }

}  // namespace

TEST_CASE("yaml_reader: a problem names the source and the key path", "[yaml_reader]") {
  Reader r("app.yaml", "docs/app.md");
  r.problem("", "is empty");
  r.problem("a.b", "is wrong", "set it right");
  CHECK(lines(r) == std::vector<std::string>{"app.yaml: is empty", "app.yaml: a.b: is wrong (fix: set it right)"});
  try {
    r.throw_if_any();
    FAIL("expected a StartupError");
  } catch (const StartupError& e) {
    CHECK(e.problems().size() == 2);
  }
  CHECK_NOTHROW(Reader("x", "y").throw_if_any());
}

TEST_CASE("yaml_reader: a syntax error names the source, line and column", "[yaml_reader]") {
  try {
    yaml_reader::load("a: 1\nb: [\n", "app.yaml");
    FAIL("expected a StartupError");
  } catch (const StartupError& e) {
    REQUIRE(e.problems().size() == 1);
    CHECK(e.problems()[0].where.starts_with("app.yaml:3:"));
    CHECK(e.problems()[0].what.starts_with("not valid YAML: "));
  }
}

TEST_CASE("yaml_reader: a map calls back its known keys and refuses the rest", "[yaml_reader]") {
  const YAML::Node doc = yaml_reader::load(
      "section:\n"
      "  port: 1\n"
      "  colour: red\n"
      "  port: 2\n"
      "  ? [a, b]\n"
      "  : c\n"
      "  host: h\n",
      "app.yaml");
  Reader r("app.yaml", "docs/app.md");
  std::vector<std::string> seen;
  CHECK(r.map(doc, "", {"section"}, [&](const std::string& key, const YAML::Node& v, const std::string& path) {
    CHECK(path == key);
    r.map(v, path, {"host", "port"}, [&](const std::string& k, const YAML::Node& x, const std::string& p) {
      seen.push_back(p + "=" + x.Scalar());
      CHECK(p == "section." + k);
    });
  }));
  // The first of a repeated key counts, in the file's order.
  CHECK(seen == std::vector<std::string>{"section.port=1", "section.host=h"});
  CHECK(lines(r) == std::vector<std::string>{
                        "app.yaml: section.colour: unknown key (fix: the keys accepted in 'section' are: host, port "
                        "(see docs/app.md))",
                        "app.yaml: section.port: the key appears more than once (line 4) (fix: keep one of them)",
                        "app.yaml: section: a key must be a plain name, found a list",
                    });
}

TEST_CASE("yaml_reader: an unknown key at the top level lists the top-level keys", "[yaml_reader]") {
  Reader r("app.yaml", "docs/app.md");
  r.map(yaml_reader::load("databse: x\n", "app.yaml"), "", {"database", "log"},
        [](const std::string&, const YAML::Node&, const std::string&) { FAIL("no known key here"); });
  CHECK(lines(r) == std::vector<std::string>{"app.yaml: databse: unknown key (fix: the keys accepted at the top "
                                             "level are: database, log (see docs/app.md))"});
}

TEST_CASE("yaml_reader: a map, a list or entries where something else was written", "[yaml_reader]") {
  const auto nothing = [](const std::string&, const YAML::Node&, const std::string&) {};
  Reader r("app.yaml", "docs/app.md");
  CHECK(!r.map(scalar("debug"), "log", {"level"}, nothing));
  CHECK(!r.map(YAML::Node(), "", {"log"}, nothing));
  CHECK(!r.map(scalar("[1]"), "items[0]", {"a"}, nothing));
  CHECK(!r.entries(scalar("[1]"), "faults.sub_merchants", "a map of sub-merchant mchid to fault", nothing));
  CHECK(!r.list(scalar("{a: b}"), "merchants", "a list of merchants", [](const YAML::Node&, const std::string&) {}));
  CHECK(lines(r) ==
        std::vector<std::string>{
            "app.yaml: log: expected a map of settings, found 'debug' (fix: write it as 'log:' followed by indented "
            "'key: value' lines)",
            "app.yaml: expected a map of settings, found nothing (null) (fix: write the file as 'key: value' lines "
            "(see docs/app.md))",
            "app.yaml: items[0]: expected a map of settings, found a list (fix: write each item as indented 'key: "
            "value' lines)",
            "app.yaml: faults.sub_merchants: expected a map of sub-merchant mchid to fault, found a list",
            "app.yaml: merchants: expected a list of merchants, found a map",
        });
}

TEST_CASE("yaml_reader: entries take any plain key once; a list gives each item its path", "[yaml_reader]") {
  const YAML::Node doc = yaml_reader::load("m: {'19': a, '20': b, '19': c}\nl: [x, y]\n", "app.yaml");
  Reader r("app.yaml", "docs/app.md");
  std::vector<std::string> seen;
  CHECK(r.entries(doc["m"], "m", "a map", [&](const std::string& k, const YAML::Node& v, const std::string& p) {
    seen.push_back(k + "=" + v.Scalar() + "@" + p);
  }));
  CHECK(r.list(doc["l"], "l", "a list",
               [&](const YAML::Node& v, const std::string& p) { seen.push_back(v.Scalar() + "@" + p); }));
  CHECK(seen == std::vector<std::string>{"19=a@m.19", "20=b@m.20", "x@l[0]", "y@l[1]"});
  CHECK(lines(r) ==
        std::vector<std::string>{"app.yaml: m.19: the key appears more than once (line 1) (fix: keep one of them)"});
}

TEST_CASE("yaml_reader: typed scalars, and what each refusal says", "[yaml_reader]") {
  const struct {
    std::string yaml;
    std::string read;     // which reader
    std::string value;    // the value read, or "" when refused
    std::string problem;  // the refusal, or "" when read
  } rows[] = {
      {"abc", "string", "abc", ""},
      {"''", "string", "", "app.yaml: k: must not be empty"},
      {"''", "string_or_empty", "", ""},
      {"{a: b}", "string", "", "app.yaml: k: expected a string, found a map"},
      {"info", "level", "info", ""},
      {"loud", "level", "", "app.yaml: k: expected one of trace, info, off, found 'loud'"},
      {"text", "format", "", "app.yaml: k: expected logfmt or json, found 'text' (fix: logfmt for people)"},
      {"42", "integer", "42", ""},
      {"-3", "integer", "-3", ""},
      {"many", "integer", "", "app.yaml: k: expected a whole number, found 'many'"},
      {"4.5", "integer", "", "app.yaml: k: expected a whole number, found '4.5'"},
      {"0x10", "integer", "", "app.yaml: k: expected a whole number, found '0x10'"},
      {"[1]", "integer", "", "app.yaml: k: expected a whole number, found a list"},
      {"101", "integer", "", "app.yaml: k: must be between -5 and 100, found 101"},
      {"99999999999999999999", "integer", "", "app.yaml: k: expected a whole number, found '99999999999999999999'"},
      {"0.25", "number", "0.25", ""},
      {"1e-1", "number", "0.1", ""},
      {".nan", "number", "", "app.yaml: k: expected a number, found '.nan'"},
      {"1.5", "number", "", "app.yaml: k: must be between 0 and 1, found 1.5"},
      {"250ms", "duration", "250", ""},
      {"10s", "duration", "10000", ""},
      {"5m", "duration", "300000", ""},
      {"1h", "duration", "3600000", ""},
      {"10", "duration", "", "app.yaml: k: expected a duration with a unit such as 500ms, 10s, 5m or 1h, found '10'"},
      {"10d", "duration", "", "app.yaml: k: expected a duration with a unit such as 500ms, 10s, 5m or 1h, found '10d'"},
      {"2h", "duration", "", "app.yaml: k: must be between 100ms and 3600000ms, found 2h"},
      {"0", "duration_or_off", "0", ""},
      {"0s", "duration_or_off", "0", ""},
      {"50ms", "duration_or_off", "", "app.yaml: k: must be between 100ms and 3600000ms (or 0 for off), found 50ms"},
      {"x", "duration_or_off", "",
       "app.yaml: k: expected a duration with a unit such as 500ms, 10s, 5m or 1h (or 0 for off), found 'x'"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.yaml, row.read);
    Reader r("app.yaml", "docs/app.md");
    const YAML::Node node = scalar(row.yaml);
    std::optional<std::string> value;
    const auto text = [](auto v) { return v ? std::optional<std::string>(std::to_string(*v)) : std::nullopt; };
    if (row.read == "string")
      value = r.string(node, "k");
    else if (row.read == "string_or_empty")
      value = r.string(node, "k", Reader::Empty::allowed);
    else if (row.read == "level")
      value = r.one_of(node, "k", {"trace", "info", "off"});
    else if (row.read == "format")
      value = r.one_of(node, "k", {"logfmt", "json"}, "logfmt for people");
    else if (row.read == "integer")
      value = text(r.integer<int>(node, "k", -5, 100));
    else if (row.read == "number") {
      const auto v = r.number(node, "k", 0, 1);
      if (v) value = *v == 0.25 ? "0.25" : *v == 0.1 ? "0.1" : "other";
    } else if (row.read == "duration" || row.read == "duration_or_off") {
      const auto v = r.duration(node, "k", milliseconds{100}, milliseconds{3'600'000},
                                row.read == "duration" ? Reader::Zero::refused : Reader::Zero::off);
      if (v) value = std::to_string(v->count());
    } else
      FAIL("no reader " + row.read);
    if (row.problem.empty()) {
      CHECK(lines(r).empty());
      CHECK(value == row.value);
    } else {
      CHECK(!value);
      CHECK(lines(r) == std::vector<std::string>{row.problem});
    }
  }
}

TEST_CASE("yaml_reader: set keeps the default when a read was refused", "[yaml_reader]") {
  int limit = 4;
  yaml_reader::set(limit, std::optional<int>{});
  CHECK(limit == 4);
  yaml_reader::set(limit, std::optional<long long>{9});
  CHECK(limit == 9);
  std::optional<std::string> file;
  yaml_reader::set(file, std::optional<std::string>{"a.pem"});
  CHECK(file == std::optional<std::string>("a.pem"));
}
