// The Prometheus text exposition: escaping, histogram buckets, counters mirrored from totals.
#include <catch2/catch.hpp>

#include "core/metrics/registry.h"

using namespace callbackd::metrics;

TEST_CASE("label values are escaped per the text format", "[metrics]") {
  CHECK(escape_label_value("plain") == "plain");
  CHECK(escape_label_value("a\"b") == "a\\\"b");
  CHECK(escape_label_value("back\\slash") == "back\\\\slash");
  CHECK(escape_label_value("two\nlines") == "two\\nlines");
  CHECK(escape_help("h\\e\nlp \"q\"") == "h\\\\e\\nlp \"q\"");
}

TEST_CASE("values are rendered as Prometheus spells them", "[metrics]") {
  CHECK(format_value(0) == "0");
  CHECK(format_value(42) == "42");
  CHECK(format_value(0.1) == "0.1");
  CHECK(format_value(2.5) == "2.5");
  CHECK(format_value(1.0 / 0.0) == "+Inf");
  CHECK(format_value(-1.0 / 0.0) == "-Inf");
  CHECK(format_value(0.0 / 0.0) == "NaN");
}

TEST_CASE("counters, gauges and histograms render with HELP, TYPE and labels", "[metrics]") {
  Registry r;
  r.declare("x_requests_total", Type::counter, "Requests.\nBy tenant.");
  r.declare("x_pending", Type::gauge, "Pending rows.");
  r.declare("x_seconds", Type::histogram, "Latency.", {0.1, 1});
  r.add("x_requests_total", {{"tenant", "t\"1"}, {"outcome", "applied"}});
  r.add("x_requests_total", {{"tenant", "t\"1"}, {"outcome", "applied"}}, 2);
  r.set("x_pending", {}, 7);
  r.observe("x_seconds", {{"tenant", "a"}}, 0.05);
  r.observe("x_seconds", {{"tenant", "a"}}, 0.5);
  r.observe("x_seconds", {{"tenant", "a"}}, 3);
  const std::string text = r.render();
  CHECK(text ==
        "# HELP x_requests_total Requests.\\nBy tenant.\n"
        "# TYPE x_requests_total counter\n"
        "x_requests_total{tenant=\"t\\\"1\",outcome=\"applied\"} 3\n"
        "# HELP x_pending Pending rows.\n"
        "# TYPE x_pending gauge\n"
        "x_pending 7\n"
        "# HELP x_seconds Latency.\n"
        "# TYPE x_seconds histogram\n"
        "x_seconds_bucket{tenant=\"a\",le=\"0.1\"} 1\n"
        "x_seconds_bucket{tenant=\"a\",le=\"1\"} 2\n"
        "x_seconds_bucket{tenant=\"a\",le=\"+Inf\"} 3\n"
        "x_seconds_sum{tenant=\"a\"} 3.55\n"
        "x_seconds_count{tenant=\"a\"} 3\n");
}

TEST_CASE("clear drops a gauge series and set_total mirrors a counter kept elsewhere", "[metrics]") {
  Registry r;
  r.declare("g", Type::gauge, "G.");
  r.declare("c_total", Type::counter, "C.");
  r.set("g", {{"tenant", "gone"}}, 1);
  r.clear("g");
  r.set("g", {{"tenant", "here"}}, 2);
  r.set_total("c_total", {}, 10);
  r.set_total("c_total", {}, 12);
  const std::string text = r.render();
  CHECK(text.find("gone") == std::string::npos);
  CHECK(text.find("g{tenant=\"here\"} 2\n") != std::string::npos);
  CHECK(text.find("c_total 12\n") != std::string::npos);
}

TEST_CASE("a declared family with no series still says its type", "[metrics]") {
  Registry r;
  r.declare("empty_total", Type::counter, "Nothing yet.");
  CHECK(r.render() == "# HELP empty_total Nothing yet.\n# TYPE empty_total counter\n");
}
