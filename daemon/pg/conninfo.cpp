#include "pg/conninfo.h"

#include <libpq-fe.h>

#include <memory>
#include <string_view>

#include "core/error.h"

namespace callbackd::pg {
namespace {

struct OptionsDeleter {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using Options = std::unique_ptr<PQconninfoOption, OptionsDeleter>;

// libpq's parse errors quote the text around the problem, which may be part of a password:
// callers only learn THAT it failed.
Options parse(const std::string& conninfo) {
  char* err = nullptr;
  Options opts(PQconninfoParse(conninfo.c_str(), &err));
  if (err) PQfreemem(err);
  return opts;
}

std::string quote_value(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace

std::string describe_conninfo(const std::string& conninfo) {
  Options opts = parse(conninfo);
  if (!opts) return "(unparsable conninfo)";
  std::string out;
  for (std::string_view key : {"host", "hostaddr", "port", "dbname", "user"}) {
    for (PQconninfoOption* o = opts.get(); o->keyword; ++o) {
      if (key != o->keyword || !o->val || !*o->val) continue;
      if (!out.empty()) out += ' ';
      out += o->keyword;
      out += '=';
      out += o->val;
    }
  }
  return out.empty() ? "(libpq defaults)" : out;
}

std::string conninfo_with_defaults(const std::string& conninfo, std::chrono::milliseconds connect_timeout,
                                   const std::string& application_name) {
  Options opts = parse(conninfo);
  if (!opts)
    throw StartupError(Problem{"database.url", "not a valid libpq conninfo or URI",
                               "use key=value pairs (host=... dbname=...) or postgresql://user@host/db"});
  // libpq counts whole seconds and treats values below 2 as 2; round up so that the
  // configured deadline is never shortened.
  auto seconds = (connect_timeout.count() + 999) / 1000;
  if (seconds < 2) seconds = 2;

  std::string out;
  bool has_timeout = false;
  bool has_app_name = false;
  for (PQconninfoOption* o = opts.get(); o->keyword; ++o) {
    if (!o->val) continue;
    std::string_view key = o->keyword;
    has_timeout = has_timeout || key == "connect_timeout";
    has_app_name = has_app_name || key == "application_name";
    if (!out.empty()) out += ' ';
    out += o->keyword;
    out += '=';
    out += quote_value(o->val);
  }
  if (!has_timeout) out += (out.empty() ? "" : " ") + std::string("connect_timeout=") + std::to_string(seconds);
  if (!has_app_name) out += " application_name=" + quote_value(application_name);
  return out;
}

}  // namespace callbackd::pg
