// The one error model of callbackd. Every module follows it:
//
//  1. Bugs (a broken invariant) terminate: CALLBACKD_ASSERT, never an exception that
//     somebody might catch and carry on from.
//  2. Start-up and configuration errors throw StartupError, which carries EVERY problem
//     found (not just the first), each naming the input (file, key path, row), what is
//     wrong and the fix. main() prints them and exits non-zero; nothing is half-started.
//  3. Runtime errors from the network, the API or the database are values (Result<T, E>,
//     or an outcome type) that the caller classifies, records, counts and retries by
//     policy. Nothing is swallowed and none of them crashes the daemon.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace callbackd {

// One thing wrong with an input, worded for the operator who has to fix it.
struct Problem {
  std::string where;  // the input: "/etc/callbackd/callbackd.yaml: database.url", "tenant acme"
  std::string what;   // what is wrong: "expected a string, found a map"
  std::string fix;    // what to do: "set database.url to a libpq conninfo or URI" (may be empty)

  std::string to_string() const {
    std::string s = where.empty() ? what : where + ": " + what;
    if (!fix.empty()) s += " (fix: " + fix + ")";
    return s;
  }
};

// Thrown only before the daemon is running (config, keys, schema version, CLI usage).
class StartupError : public std::runtime_error {
 public:
  explicit StartupError(std::vector<Problem> problems)
      : std::runtime_error(join(problems)), problems_(std::move(problems)) {}
  explicit StartupError(Problem problem) : StartupError(std::vector<Problem>{std::move(problem)}) {}
  const std::vector<Problem>& problems() const noexcept { return problems_; }

 private:
  static std::string join(const std::vector<Problem>& problems) {
    std::string s;
    for (const auto& p : problems) {
      if (!s.empty()) s += '\n';
      s += p.to_string();
    }
    return s;
  }
  std::vector<Problem> problems_;
};

// A value or an error, for runtime failures that are part of normal operation.
// (std::expected needs C++23 and clang 14 cannot use libstdc++'s; the fuzzers build with clang.)
// The database could not be reached, or a statement failed. The message names the server
// by describe_conninfo() (host, port, dbname, user; never a password) and, for a failed
// migration, the file. A runtime error: the caller reports it and exits or retries.
class DatabaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class T, class E>
class Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, E> v_;
};

[[noreturn]] inline void assertion_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "callbackd: internal error: %s failed at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace callbackd

// An invariant of our own code; a failure is a bug, so the process stops at once.
#define CALLBACKD_ASSERT(expr) \
  ((expr) ? static_cast<void>(0) : ::callbackd::assertion_failed(#expr, __FILE__, __LINE__))
