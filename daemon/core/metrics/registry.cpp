#include "core/metrics/registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace callbackd::metrics {

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest of %.15g/%.17g that reads back as the same double (0.1, not 0.10000000000000001).
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

namespace {

const char* type_name(Type t) {
  switch (t) {
    case Type::counter:
      return "counter";
    case Type::gauge:
      return "gauge";
    case Type::histogram:
      return "histogram";
  }
  return "untyped";
}

void render_labels(std::string& out, const Labels& labels, const char* extra_name = nullptr,
                   const std::string& extra_value = "") {
  if (labels.empty() && extra_name == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + escape_label_value(v) + '"';
  }
  if (extra_name != nullptr) {
    if (!first) out += ',';
    out += std::string(extra_name) + "=\"" + escape_label_value(extra_value) + '"';
  }
  out += '}';
}

}  // namespace

void Registry::declare(const std::string& name, Type type, std::string help, std::vector<double> buckets) {
  CALLBACKD_ASSERT(index_.count(name) == 0);
  for (std::size_t i = 1; i < buckets.size(); ++i) CALLBACKD_ASSERT(buckets[i - 1] < buckets[i]);
  index_[name] = families_.size();
  families_.push_back(Family{name, type, std::move(help), std::move(buckets), {}});
}

Registry::Family& Registry::family(const std::string& name, Type type) {
  const auto it = index_.find(name);
  CALLBACKD_ASSERT(it != index_.end());
  Family& f = families_[it->second];
  CALLBACKD_ASSERT(f.type == type);
  return f;
}

void Registry::add(const std::string& name, const Labels& labels, double delta) {
  CALLBACKD_ASSERT(delta >= 0);
  family(name, Type::counter).series[labels].value += delta;
}

void Registry::set(const std::string& name, const Labels& labels, double value) {
  family(name, Type::gauge).series[labels].value = value;
}

void Registry::set_total(const std::string& name, const Labels& labels, double value) {
  family(name, Type::counter).series[labels].value = value;
}

void Registry::observe(const std::string& name, const Labels& labels, double value) {
  Family& f = family(name, Type::histogram);
  Series& s = f.series[labels];
  if (s.buckets.empty()) s.buckets.assign(f.bounds.size(), 0);
  for (std::size_t i = 0; i < f.bounds.size(); ++i)
    if (value <= f.bounds[i]) {
      ++s.buckets[i];
      break;
    }
  s.sum += value;
  ++s.count;
}

void Registry::clear(const std::string& name) {
  const auto it = index_.find(name);
  CALLBACKD_ASSERT(it != index_.end());
  families_[it->second].series.clear();
}

std::string Registry::render() const {
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + ' ' + escape_help(f.help) + '\n';
    out += "# TYPE " + f.name + ' ' + type_name(f.type) + '\n';
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::histogram) {
        out += f.name;
        render_labels(out, labels);
        out += ' ' + format_value(s.value) + '\n';
        continue;
      }
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i < f.bounds.size(); ++i) {
        cumulative += i < s.buckets.size() ? s.buckets[i] : 0;
        out += f.name + "_bucket";
        render_labels(out, labels, "le", format_value(f.bounds[i]));
        out += ' ' + std::to_string(cumulative) + '\n';
      }
      out += f.name + "_bucket";
      render_labels(out, labels, "le", "+Inf");
      out += ' ' + std::to_string(s.count) + '\n';
      out += f.name + "_sum";
      render_labels(out, labels);
      out += ' ' + format_value(s.sum) + '\n';
      out += f.name + "_count";
      render_labels(out, labels);
      out += ' ' + std::to_string(s.count) + '\n';
    }
  }
  return out;
}

}  // namespace callbackd::metrics
