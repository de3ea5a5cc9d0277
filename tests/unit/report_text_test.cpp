// The terminal text of `plan` and `status`: hostile stored values stay one short line.
#include <catch2/catch.hpp>

#include "app/report_text.h"

using callbackd::app::printable;

TEST_CASE("printable escapes, quotes and bounds a stored value", "[report-text]") {
  struct Row {
    std::string text;
    std::size_t max_bytes;
    std::string shown;
  };
  const Row rows[] = {
      {"1900000001", 1024, "1900000001"},
      {"", 1024, "\"\""},
      {"a b", 1024, "\"a b\""},
      {"a\"b\\c", 1024, "\"a\\\"b\\\\c\""},
      {"1\nlevel=error", 1024, "\"1\\x0Alevel=error\""},
      {"\u202E1900", 1024, "\"\\xE2\\x80\\xAE1900\""},  // a bidi override cannot reorder the line
      {std::string(200'000, '7'), 1024, std::string(1024, '7') + "…(200000 bytes)"},
      {"中文", 4, "\"\\xE4\\xB8\\xAD\"…(6 bytes)"},  // cut on a character boundary
      {"中文", 2, "…(6 bytes)"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text.substr(0, 40), row.max_bytes);
    CHECK(printable(row.text, row.max_bytes) == row.shown);
  }
  CHECK(printable(std::string(10 * 1024 * 1024, 'x')).size() < 1100);  // the default bound
}

TEST_CASE("a duration needs its unit", "[report-text]") {
  using callbackd::duration_from_text;
  using std::chrono::milliseconds;
  CHECK(duration_from_text("250ms") == milliseconds{250});
  CHECK(duration_from_text("2s") == milliseconds{2'000});
  CHECK(duration_from_text("5m") == milliseconds{300'000});
  CHECK(duration_from_text("1h") == milliseconds{3'600'000});
  for (const char* bad : {"", "2", "s", "2 s", "-1s", "2sec", "1.5s", "+2s"}) {
    CAPTURE(bad);
    CHECK_FALSE(duration_from_text(bad));
  }
}
