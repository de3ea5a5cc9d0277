#include "core/yaml_reader.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "core/text.h"

namespace callbackd::yaml_reader {

YAML::Node load(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    // yaml-cpp's mark is 0-based.
    throw StartupError(Problem{source + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1),
                               "not valid YAML: " + e.msg, "fix the syntax at that line"});
  }
}

std::string line_of(const YAML::Node& node) { return "line " + std::to_string(node.Mark().line + 1); }

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "an undefined value";
  }
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s;
}

Reader::Reader(std::string source, std::string documentation)
    : source_(std::move(source)), documentation_(std::move(documentation)) {}

void Reader::problem(const std::string& path, std::string what, std::string fix) {
  problems_.push_back({path.empty() ? source_ : source_ + ": " + path, std::move(what), std::move(fix)});
}

void Reader::throw_if_any() const {
  if (!problems_.empty()) throw StartupError(problems_);
}

namespace {

// How to write a map where something else was found, for the setting at `path`.
std::string how_to_write_a_map(const std::string& path, const std::string& documentation) {
  if (path.empty()) return "write the file as 'key: value' lines (see " + documentation + ")";
  if (path.back() == ']') return "write each item as indented 'key: value' lines";
  const auto dot = path.rfind('.');
  const std::string leaf = dot == std::string::npos ? path : path.substr(dot + 1);
  return "write it as '" + leaf + ":' followed by indented 'key: value' lines";
}

}  // namespace

bool Reader::walk(const YAML::Node& node, const std::string& path, const std::vector<std::string>* known,
                  const std::string& expected, const OnKey& on_key) {
  if (!node.IsMap()) {
    problem(path, "expected " + expected + ", found " + describe(node),
            known ? how_to_write_a_map(path, documentation_) : "");
    return false;
  }
  // yaml-cpp 0.7 accepts a map with a key written twice and a lookup finds only one of them,
  // so a setting written twice would lose a value without a word.
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      problem(path, "a key must be a plain name, found " + describe(kv.first));
      continue;
    }
    const std::string key = kv.first.Scalar();
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (!seen.insert(key).second) {
      problem(key_path, "the key appears more than once (" + line_of(kv.first) + ")", "keep one of them");
      continue;
    }
    if (known && std::find(known->begin(), known->end(), key) == known->end()) {
      problem(key_path, "unknown key",
              "the keys accepted " + (path.empty() ? std::string("at the top level") : "in '" + path + "'") +
                  " are: " + join(*known) + " (see " + documentation_ + ")");
      continue;
    }
    on_key(key, kv.second, key_path);
  }
  return true;
}

bool Reader::map(const YAML::Node& node, const std::string& path, const std::vector<std::string>& known,
                 const OnKey& on_key) {
  return walk(node, path, &known, "a map of settings", on_key);
}

bool Reader::entries(const YAML::Node& node, const std::string& path, const std::string& expected,
                     const OnKey& on_key) {
  return walk(node, path, nullptr, expected, on_key);
}

bool Reader::list(const YAML::Node& node, const std::string& path, const std::string& expected,
                  const std::function<void(const YAML::Node& item, const std::string& path)>& on_item) {
  if (!node.IsSequence()) {
    problem(path, "expected " + expected + ", found " + describe(node));
    return false;
  }
  for (std::size_t i = 0; i < node.size(); ++i) on_item(node[i], path + "[" + std::to_string(i) + "]");
  return true;
}

std::optional<std::string> Reader::string(const YAML::Node& node, const std::string& path, Empty empty) {
  if (!node.IsScalar()) {
    problem(path, "expected a string, found " + describe(node));
    return std::nullopt;
  }
  if (empty == Empty::refused && node.Scalar().empty()) {
    problem(path, "must not be empty");
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<std::string> Reader::one_of(const YAML::Node& node, const std::string& path,
                                          const std::vector<std::string>& allowed, const std::string& fix) {
  auto s = string(node, path);
  if (!s) return std::nullopt;
  if (std::find(allowed.begin(), allowed.end(), *s) != allowed.end()) return s;
  const std::string choices = allowed.size() == 2 ? allowed[0] + " or " + allowed[1] : "one of " + join(allowed);
  problem(path, "expected " + choices + ", found '" + *s + "'", fix);
  return std::nullopt;
}

std::optional<long long> Reader::whole_number(const YAML::Node& node, const std::string& path, long long min,
                                              long long max) {
  long long v = 0;
  const std::string s = node.IsScalar() ? node.Scalar() : "";
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (!node.IsScalar() || s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    problem(path, "expected a whole number, found " + describe(node));
    return std::nullopt;
  }
  if (v < min || v > max) {
    problem(path, "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", found " + s);
    return std::nullopt;
  }
  return v;
}

std::optional<double> Reader::number(const YAML::Node& node, const std::string& path, double min, double max) {
  const std::string s = node.IsScalar() ? node.Scalar() : "";
  char* end = nullptr;
  errno = 0;
  const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
  if (!node.IsScalar() || s.empty() || errno != 0 || end != s.c_str() + s.size() || v != v) {
    problem(path, "expected a number, found " + describe(node));
    return std::nullopt;
  }
  if (v < min || v > max) {
    std::ostringstream m;
    m << "must be between " << min << " and " << max << ", found " << s;
    problem(path, m.str());
    return std::nullopt;
  }
  return v;
}

std::optional<std::chrono::milliseconds> Reader::duration(const YAML::Node& node, const std::string& path,
                                                          std::chrono::milliseconds min, std::chrono::milliseconds max,
                                                          Zero zero) {
  using Millis = std::chrono::milliseconds;
  const bool zero_means_off = zero == Zero::off;
  const std::string s = node.IsScalar() ? node.Scalar() : "";
  if (zero_means_off && s == "0") return Millis{0};
  const auto parsed = node.IsScalar() ? duration_from_text(s) : std::nullopt;
  if (!parsed) {
    problem(path, std::string("expected a duration with a unit such as 500ms, 10s, 5m or 1h") +
                      (zero_means_off ? " (or 0 for off)" : "") + ", found " + describe(node));
    return std::nullopt;
  }
  const Millis d = *parsed;
  if (!(zero_means_off && d.count() == 0) && (d < min || d > max)) {
    problem(path, "must be between " + std::to_string(min.count()) + "ms and " + std::to_string(max.count()) + "ms" +
                      (zero_means_off ? " (or 0 for off)" : "") + ", found " + s);
    return std::nullopt;
  }
  return d;
}

}  // namespace callbackd::yaml_reader
