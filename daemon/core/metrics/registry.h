// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
// text exposition format 0.0.4. Pure: no I/O, no clock, no locking (the daemon updates and
// renders it on its one event-loop thread). Label values are escaped per the format
// (backslash, double quote, newline); names are the caller's constants.
//
// Cardinality is the caller's duty: label by tenant, outcome, error code, never by
// sub-merchant (there may be hundreds of thousands).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace callbackd::metrics {

enum class Type { counter, gauge, histogram };

using Labels = std::vector<std::pair<std::string, std::string>>;  // rendered in this order

class Registry {
 public:
  // Declares a family. Every family must be declared before it is used (a use of an
  // undeclared family, or with the wrong type, is a bug: CALLBACKD_ASSERT). `buckets`: the
  // histogram's upper bounds, ascending (+Inf is implied).
  void declare(const std::string& name, Type type, std::string help, std::vector<double> buckets = {});

  // Counters only go up: `delta` must be >= 0.
  void add(const std::string& name, const Labels& labels, double delta = 1);
  // Gauges; also counters mirrored from a source that keeps its own total (set_total).
  void set(const std::string& name, const Labels& labels, double value);
  void set_total(const std::string& name, const Labels& labels, double value);
  void observe(const std::string& name, const Labels& labels, double value);
  // Drops every series of a family (gauges re-filled from a snapshot: a removed tenant goes).
  void clear(const std::string& name);

  // The whole registry in the text format, families in declaration order, series by labels.
  std::string render() const;

 private:
  struct Series {
    double value = 0;                    // counter, gauge
    std::vector<std::uint64_t> buckets;  // histogram: per-bucket (not cumulative) counts
    double sum = 0;
    std::uint64_t count = 0;
  };
  struct Family {
    std::string name;
    Type type;
    std::string help;
    std::vector<double> bounds;
    std::map<Labels, Series> series;
  };
  Family& family(const std::string& name, Type type);

  std::vector<Family> families_;
  std::map<std::string, std::size_t> index_;
};

// Per the exposition format: \ -> \\, " -> \", newline -> \n.
std::string escape_label_value(std::string_view value);
// HELP text: \ -> \\, newline -> \n.
std::string escape_help(std::string_view help);
// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled as Prometheus does.
std::string format_value(double value);

}  // namespace callbackd::metrics
