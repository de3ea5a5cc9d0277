#include "core/yaml_reader.h"

#include "core/error.h"

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

std::optional<std::string> MapKeys::repeated(const std::string& key, const YAML::Node& key_node) {
  if (seen_.insert(key).second) return std::nullopt;
  return "the key appears more than once (" + line_of(key_node) + ")";
}

}  // namespace callbackd::yaml_reader
