// `callbackd status`: per tenant, its mode and any pause, how many rows are in each state of
// callbackd.sync_status, which error codes hold rows back, and how long the oldest unsettled
// change has waited. Read-only, one snapshot (pg/inspect.h). Exit 0, or 1 when the database
// cannot be read.
#include <ctime>
#include <iostream>

#include "app/commands.h"
#include "app/report_text.h"
#include "core/config.h"
#include "pg/conninfo.h"
#include "pg/inspect.h"
#include "pg/migrator.h"

namespace callbackd::app {

int run_status(const CliRequest& req) {
  const Config config = load_config(req.config_path);
  try {
    pg::Inspector inspector(config.database);
    const auto tenants = inspector.status();
    std::cout << "status: database " << pg::describe_conninfo(config.database.url) << ", " << tenants.size()
              << " tenant(s)\n";
    // The states of sync_status in the order a row moves through them.
    static const char* const kStates[] = {"in_sync", "pending", "retrying", "failed", "invalid", "paused"};
    for (const auto& t : tenants) {
      std::cout << "\ntenant " << printable(t.tenant_id) << "  mode " << tenant_mode_name(t.mode);
      if (t.pause) {
        std::cout << "  PAUSED by error " << printable(t.pause->error_code.empty() ? "-" : t.pause->error_code) << ": "
                  << printable(t.pause->reason) << " (next probe "
                  << (t.pause->probe_in.count() > 0 ? "in " + human_duration(t.pause->probe_in)
                                                    : std::string("due now"))
                  << ")";
      }
      std::cout << "\n";
      long long rows = 0;
      for (const auto& [state, n] : t.by_state) rows += n;
      std::cout << "  rows " << rows;
      bool first = true;
      for (const char* state : kStates) {
        auto it = t.by_state.find(state);
        if (it == t.by_state.end()) continue;
        std::cout << (first ? ": " : ", ") << state << " " << it->second;
        first = false;
      }
      std::cout << "\n";
      if (!t.by_error.empty()) {
        std::cout << "  errors:";
        bool first_error = true;
        for (const auto& e : t.by_error) {
          std::cout << (first_error ? " " : ", ") << printable(e.error_code) << " " << e.rows << " (" << e.state << ")";
          first_error = false;
        }
        std::cout << "\n";
      }
      if (t.certificate_mode) {
        // Certificate mode: what responses are verified with, and until when.
        std::cout << "  platform certificates:";
        if (t.platform_certificates.empty()) std::cout << " none yet (downloaded when first needed)";
        bool first_certificate = true;
        for (const auto& c : t.platform_certificates) {
          const std::time_t expires = std::chrono::system_clock::to_time_t(c.expires_at);
          std::tm tm{};
          gmtime_r(&expires, &tm);
          char date[32];
          std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &tm);
          std::cout << (first_certificate ? " " : ", ") << printable(c.serial) << " (expires " << date << ")";
          first_certificate = false;
        }
        std::cout << "\n";
      }
      std::cout << "  queue: " << t.queued << " entr" << (t.queued == 1 ? "y" : "ies");
      if (t.oldest_pending_change)
        std::cout << ", oldest pending change " << human_duration(*t.oldest_pending_change) << " old";
      std::cout << "\n";
    }
    return 0;
  } catch (const DatabaseError& e) {
    std::cerr << "callbackd: status: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace callbackd::app
