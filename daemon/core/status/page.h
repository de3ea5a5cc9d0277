// The status page (issue 19; docs/operations.md, "The status page"): GET /, /tenants/T and
// /sub-merchants?mchid=M on the metrics listener, for a person who wants to look rather than
// query. Pure: which page a request target asks for, what the page reads from the database
// (the Query and the DatabaseView that engine::Store::read_status answers), and the HTML.
//
// Safety of the HTML: every value that comes from the database or the request is written
// through html_escape (a hostile notify_url or mchid renders as text); the page has no
// script, no external asset and no inline style attribute: one <style> element whose SHA-256
// the Content-Security-Policy names (content_security_policy()), so a browser refuses
// anything else, should escaping ever fail. Read-only: only GET, only forms with method=get.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace callbackd::status {

// Bounds of what one page shows (each query has a LIMIT; docs/operations.md).
inline constexpr int kErrorGroups = 50;           // error groups listed
inline constexpr int kSampleMchids = 5;           // sub-merchant ids shown per error group
inline constexpr int kInvalidRows = 50;           // newest invalid rows
inline constexpr int kAuditRows = 20;             // newest audit rows on / and /tenants/T
inline constexpr int kSubMerchantAuditRows = 50;  // audit history of one sub-merchant
inline constexpr std::size_t kMaxIdLength = 128;  // longer tenant ids or mchids are refused
// The grouped reads (rows by state, the queue, the error groups) grow with the queue, the
// failing rows and, for rows by state, the changes not yet folded (migrations/0014; a count of
// every row while a bulk load's are folded): docs/operations.md. They run on the page's own
// connection and thread, never the reconciler's, so a slow one delays only the page; past this
// it is cancelled and the page shows the rest without it. Below systemd's TimeoutStopSec
// (30 s): a read running when the daemon stops holds the exit at most this long.
inline constexpr int kScanTimeoutMs = 10'000;
// How long a page reuses its scans: 2 s, or 20 times what they took if longer. While someone
// watches a page, PostgreSQL spends at most a twentieth of one core on its scans (a million
// rows counted in 2.5 s while a bulk load's changes are folded: counted again at most every
// 50 s); the page says how old they are.
std::chrono::milliseconds scans_reused_for(std::chrono::milliseconds took);

enum class PageKind { overview, tenant, sub_merchant };

// What a request target asks for: a page, or an HTTP error with a reason for the body.
struct Route {
  enum class Kind { page, not_found, bad_request };
  Kind kind = Kind::not_found;
  PageKind page = PageKind::overview;
  std::string argument;  // the tenant id or the mchid, percent-decoded
  std::string error;     // for not_found and bad_request
  // The cache key: the same page asked for in another spelling is the same entry.
  std::string key() const;
};
// "/" -> overview; "/tenants/<id>" -> tenant; "/sub-merchants?mchid=<id>" -> sub_merchant
// (an empty mchid is the overview's search form sent empty: bad_request). Percent-encoding is
// decoded; a malformed escape, a NUL or an id over kMaxIdLength is bad_request.
Route parse_route(std::string_view target);

// What the page asks the database (engine::Store::read_status), from a Route.
struct Query {
  PageKind page = PageKind::overview;
  std::string argument;
  // false: only the bounded reads; the scans come from an earlier answer (carry_scans).
  bool scans = true;
};

// --- What the database answers (daemon/pg/status_page.cpp) ------------------------------
struct TenantRows {
  std::string tenant_id;
  std::string mode;  // apply | observe | paused (tenants.mode)
  int rate_per_minute = 0;
  std::optional<std::string> paused_reason;  // tenant_state: paused by the daemon
  std::optional<std::string> paused_error_code;
  // tenant_leases (migrations/0013): each instance holding shares of its rate, by instance id.
  struct Holder {
    std::string instance;
    int shares = 0;                          // how many of the tenant's shares it holds
    int rate_per_minute = 0;                 // what they may send a minute together
    std::optional<long long> lease_left_ms;  // its instance's lease; negative once lapsed
  };
  std::vector<Holder> holders;
  int shares = 1;                             // callbackd.rate_shares(rate_per_minute)
  std::map<std::string, long long> by_state;  // sync_status.state -> rows
  long long queued = 0;                       // pending_work entries
  std::optional<long long> oldest_change_ms;  // age of the oldest queued change (not resync)
};
struct ErrorGroup {
  std::string tenant_id;
  std::string state;  // retrying | failed
  std::string error_code;
  long long rows = 0;
  std::vector<std::string> sample_mchids;  // the first kSampleMchids, by mchid
};
struct InvalidRow {
  std::string mchid;
  std::string tenant_id;
  std::string error_code;
  std::string error_message;
  std::optional<std::string> notify_url;  // the desired value that was refused
  std::string changed_at;                 // UTC, as text
};
struct AuditRow {
  long long id = 0;
  std::string created_at;  // UTC, as text
  std::string tenant_id;
  std::optional<std::string> mchid;
  std::string outcome;
  std::optional<int> http_status;
  std::optional<std::string> error_code;
  std::optional<std::string> error_message;
  std::optional<std::string> notify_url;
  std::optional<bool> switch_on;
  std::optional<std::string> instance;
};
struct SubMerchantRow {
  std::string mchid;
  std::string tenant_id;
  std::string state;  // sync_status.state
  std::optional<std::string> desired_notify_url;
  std::optional<bool> desired_switch;
  std::string desired_updated_at;
  std::optional<std::string> applied_notify_url;
  std::optional<bool> applied_switch;
  std::optional<std::string> update_time;  // WeChat Pay's, verbatim
  int attempts = 0;
  std::optional<int> last_http_status;
  std::optional<std::string> last_error_code;
  std::optional<std::string> last_error_message;
  std::optional<std::string> next_attempt_at;
  std::optional<std::string> tenant_paused_reason;
  bool queued = false;
  // The last value read back from WeChat Pay ("" when nothing was set) and when (UTC text);
  // nullopt: never read.
  std::optional<std::string> live_notify_url;
  std::optional<std::string> live_read_at;
};
struct DatabaseView {
  std::vector<TenantRows> tenants;  // overview: all; tenant page: the one (empty: unknown tenant)
  bool counts_skipped = false;      // rows by state took longer than kScanTimeoutMs: not shown
  bool errors_skipped = false;      // the error groups took longer than kScanTimeoutMs
  // The scans (rows by state and queue of each tenant, error groups): what they took, and how
  // old they are when reused from an earlier answer (carry_scans). Unset: no scans asked.
  std::optional<long long> scans_took_ms;
  long long scans_age_ms = 0;
  std::vector<ErrorGroup> errors;
  std::vector<InvalidRow> invalid;
  std::vector<AuditRow> audit;                 // newest first
  std::optional<SubMerchantRow> sub_merchant;  // sub_merchant page: nullopt = no desired row
};

// A fresh answer to a Query without scans, completed with the scans of `scanned`, an earlier
// answer for the same page that is `age` old: each tenant's rows by state and queue (by
// tenant_id: a tenant added since shows none yet), the error groups, the skipped flags.
void carry_scans(DatabaseView& fresh, const DatabaseView& scanned, std::chrono::milliseconds age);

// --- What the running daemon adds (in memory, fresh on every render) ---------------------
struct LiveTenant {
  double effective_rate_per_minute = 0;  // below tenants.rate_per_minute after a 429
  bool throttled = false;
  int in_flight = 0;
  bool paused_by_error = false;  // the reason is tenant_state's (TenantRows::paused_reason)
};
struct Live {
  std::string instance;  // this daemon: "host:pid"
  std::string version;
  std::string generated_at;                   // UTC, as text
  std::map<std::string, LiveTenant> tenants;  // tenants this instance runs, by tenant_id
  int refresh_seconds = 10;                   // <meta http-equiv="refresh">; 0: none
};

std::string html_escape(std::string_view text);
// "%41" -> "A"; nullopt on a malformed escape. '+' is a space (form encoding) when `form`.
std::optional<std::string> percent_decode(std::string_view text, bool form);
// For a link: every byte outside [A-Za-z0-9-._~] as %XX.
std::string percent_encode(std::string_view text);

// The page for `route` (kind page) from what the database said and the daemon knows.
std::string render_page(const Route& route, const DatabaseView& db, const Live& live);
// A page saying the database could not be read (503), with the reason.
std::string render_database_error(const Route& route, const std::string& error, const Live& live);
// A short page for 400/404 with `route.error`.
std::string render_error(const Route& route, const Live& live);

// The Content-Security-Policy header: nothing from anywhere but the page's own stylesheet
// (by hash), forms to this origin only, no framing.
const std::string& content_security_policy();

}  // namespace callbackd::status
