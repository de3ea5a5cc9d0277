// Process-wide logging set-up (spdlog). Lines are logfmt or JSON per log.format; the
// messages themselves are written as `event=... key=value` so that both stay greppable.
// Secrets never reach a log line: nothing logs private keys, signatures or Authorization
// headers (the HTTPS client's errors never contain them either).
#pragma once

#include "core/config.h"

namespace callbackd::app {

// Installs the stderr logger with `log.level` and `log.format`. Safe to call again (SIGHUP).
void init_logging(const LogConfig& log);

}  // namespace callbackd::app
