// What the daemon's config (core/config.cpp) and the sandbox's (sandbox/sandbox_config.cpp) read
// YAML with: one loader whose syntax errors name the file, line and column, and one rule for a
// key written twice in a map.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>

namespace callbackd::yaml_reader {

// Parses `text`, read from `source`. A syntax error throws StartupError at
// "<source>:<line>:<column>" (1-based) saying "not valid YAML: <reason>".
YAML::Node load(const std::string& text, const std::string& source);

// "line N" (1-based) of a node, for a message that points the operator at it.
std::string line_of(const YAML::Node& node);

// The keys of one map, as a reader walks them in order. yaml-cpp 0.7 accepts a map with a key
// written twice and a lookup finds only one of them, so a setting written twice would lose a
// value without a word: readers refuse the second one.
class MapKeys {
 public:
  // For a key seen before in this map: the problem, naming the line of the repeat
  // ("the key appears more than once (line 4)"). Nothing for a key seen the first time.
  std::optional<std::string> repeated(const std::string& key, const YAML::Node& key_node);

 private:
  std::set<std::string> seen_;
};

}  // namespace callbackd::yaml_reader
