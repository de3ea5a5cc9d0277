// libpq connection strings: what may be said about one in a message, and the connection
// defaults callbackd adds. Pure string work through libpq's own parser; opens no connection.
#pragma once

#include <chrono>
#include <string>

namespace callbackd::pg {

// "host=/run/postgresql port=5432 dbname=callbackd user=callbackd" for messages and logs:
// only host, hostaddr, port, dbname and user, never the password or any other secret.
// Keys the conninfo leaves unset are omitted (libpq then uses PGHOST etc. or its defaults).
// Never throws; an unparsable conninfo is described as such, without repeating its text.
std::string describe_conninfo(const std::string& conninfo);

// The conninfo (key=value or postgresql:// URI) rewritten as key=value with
// connect_timeout and application_name added unless it sets them itself, so that an
// unreachable server fails within the configured deadline and DBAs can tell callbackd's
// sessions apart in pg_stat_activity.
// Throws StartupError when libpq cannot parse it (the message never repeats the text,
// which may contain a password).
std::string conninfo_with_defaults(const std::string& conninfo, std::chrono::milliseconds connect_timeout,
                                   const std::string& application_name);

}  // namespace callbackd::pg
