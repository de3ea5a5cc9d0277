// What the daemon's config (core/config.cpp) and the sandbox's (sandbox/sandbox_config.cpp) read
// YAML with, so that the same mistake gets the same message from both: one loader whose syntax
// errors name the file, line and column, and one Reader that walks maps (refusing a key written
// twice and a key it does not know, listing the known ones) and reads typed scalars, each
// problem naming the file and the key path, collected rather than stopping at the first.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"

namespace callbackd::yaml_reader {

// Parses `text`, read from `source`. A syntax error throws StartupError at
// "<source>:<line>:<column>" (1-based) saying "not valid YAML: <reason>".
YAML::Node load(const std::string& text, const std::string& source);

// "line N" (1-based) of a node, for a message that points the operator at it.
std::string line_of(const YAML::Node& node);

// A node as the operator wrote it, for "found ...": "'10'", "a map", "a list", "nothing (null)".
std::string describe(const YAML::Node& node);

// "a, b, c".
std::string join(const std::vector<std::string>& items);

// Stores a value that was read, and leaves `out` (its default) alone when it was refused: the
// refusal is already one of the reader's problems.
template <class T, class U>
void set(T& out, std::optional<U> value) {
  if (value) out = std::move(*value);
}

// Walks one document. Every problem is kept (problems()); the caller throws them all at once
// (throw_if_any) so that the operator fixes a file in one pass.
class Reader {
 public:
  // `source` names the input in every problem ("/etc/callbackd/callbackd.yaml",
  // "POST /sandbox/config"); `documentation` is where the keys are documented, named in the
  // fix of an unknown key ("config/callbackd.example.yaml").
  Reader(std::string source, std::string documentation);

  // A problem at a key path ("database.url", "merchants[0].mchid"; "" for the document).
  // Its `where` is "<source>: <path>", or only the source for the document itself.
  void problem(const std::string& path, std::string what, std::string fix = "");
  const std::vector<Problem>& problems() const { return problems_; }
  // Throws StartupError with every problem, if there is any.
  void throw_if_any() const;

  using OnKey = std::function<void(const std::string& key, const YAML::Node& value, const std::string& path)>;

  // A map of settings at `path`: calls `on_key` for each key in `known` that is present, in the
  // file's order, with its path ("reconciler.poll_interval"). A key written twice, a key not in
  // `known` (the fix lists `known` in the order given) and a key that is not a plain name are
  // problems, and so is a node that is not a map. Returns whether it was a map.
  bool map(const YAML::Node& node, const std::string& path, const std::vector<std::string>& known, const OnKey& on_key);
  // A map whose keys are data, not settings (sub-merchant mchid -> fault): any plain name is
  // accepted, once. Not a map: "expected <expected>, found ...".
  bool entries(const YAML::Node& node, const std::string& path, const std::string& expected, const OnKey& on_key);
  // A list at `path`: calls `on_item` for each item with its path ("merchants[0]").
  // Not a list: "expected <expected>, found ...".
  bool list(const YAML::Node& node, const std::string& path, const std::string& expected,
            const std::function<void(const YAML::Node& item, const std::string& path)>& on_item);

  enum class Empty { refused, allowed };
  // A scalar as written. Not a scalar: "expected a string, found a map"; "" unless allowed:
  // "must not be empty".
  std::optional<std::string> string(const YAML::Node& node, const std::string& path, Empty empty = Empty::refused);
  // One of `allowed`: "expected logfmt or json, found 'text'" (with `fix`, if given).
  std::optional<std::string> one_of(const YAML::Node& node, const std::string& path,
                                    const std::vector<std::string>& allowed, const std::string& fix = "");
  // A whole number in decimal ("-5", "4096") from min to max. Otherwise "expected a whole
  // number, found 'many'" or "must be between 1 and 256, found 0".
  template <class Int>
  std::optional<Int> integer(const YAML::Node& node, const std::string& path, long long min, long long max) {
    if (auto v = whole_number(node, path, min, max)) return static_cast<Int>(*v);
    return std::nullopt;
  }
  // A number ("150.5", "1e3") from min to max: "expected a number, found ...".
  std::optional<double> number(const YAML::Node& node, const std::string& path, double min, double max);
  // A duration with its unit ("250ms", "10s", "5m", "1h"); a bare number is refused because
  // nobody can tell whether 10 meant seconds or milliseconds. With Zero::off, "0" is accepted
  // as 0 (off) whatever `min`.
  enum class Zero { refused, off };
  std::optional<std::chrono::milliseconds> duration(const YAML::Node& node, const std::string& path,
                                                    std::chrono::milliseconds min, std::chrono::milliseconds max,
                                                    Zero zero = Zero::refused);

 private:
  std::optional<long long> whole_number(const YAML::Node& node, const std::string& path, long long min, long long max);
  bool walk(const YAML::Node& node, const std::string& path, const std::vector<std::string>* known,
            const std::string& expected, const OnKey& on_key);

  std::string source_;
  std::string documentation_;
  std::vector<Problem> problems_;
};

}  // namespace callbackd::yaml_reader
