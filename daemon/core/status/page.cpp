#include "core/status/page.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "core/wechatpay/encoding.h"

namespace callbackd::status {

namespace {

// The one stylesheet. The CSP allows exactly this text (by its SHA-256), so it must not change
// at run time; no style= attributes anywhere (they would need 'unsafe-inline').
constexpr std::string_view kStyle =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em}"
    "table{border-collapse:collapse;margin:.3em 0}"
    "th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "code{font-family:ui-monospace,monospace;word-break:break-all}"
    ".meta{color:#666}.bad{color:#a00}.ok{color:#070}"
    "form{margin:.8em 0}input[type=text]{width:16em}nav a{margin-right:1em}";

// Columns of the per-tenant counts, in the order of a row's life (docs/sql.md, sync_status).
constexpr std::array<std::string_view, 7> kStates{"in_sync", "pending", "retrying", "failed",
                                                  "invalid", "drifted", "paused"};

std::string sha256_base64(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return wechatpay::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

// Every value shown: control characters and bidi overrides as '?' (a stored value is
// verbatim), at most kShownBytes (the database already cut values over 1 KiB:
// callbackd.status_excerpt, migration 0010), then HTML-escaped.
constexpr std::size_t kShownBytes = 1100;
std::string e(std::string_view text) { return html_escape(wechatpay::excerpt(text, kShownBytes)); }
std::string e_opt(const std::optional<std::string>& text) { return text ? e(*text) : "<span class=meta>—</span>"; }
std::string code(std::string_view text) { return "<code>" + e(text) + "</code>"; }
std::string code_opt(const std::optional<std::string>& text) {
  return text ? code(*text) : "<span class=meta>NULL</span>";
}
std::string yes_no(const std::optional<bool>& b) {
  return b ? (*b ? "true" : "false") : "<span class=meta>NULL</span>";
}
std::string number(long long n) {
  // Thousands separated by a thin space: a 1,000,000-row count is read at a glance.
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += "&#8239;";
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}
std::string seconds_text(long long ms) {
  char buf[32];
  if (ms < 60'000) {
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  } else if (ms < 3'600'000) {
    std::snprintf(buf, sizeof buf, "%lld min %lld s", ms / 60'000, ms % 60'000 / 1000);
  } else {
    std::snprintf(buf, sizeof buf, "%lld h %lld min", ms / 3'600'000, ms % 3'600'000 / 60'000);
  }
  return buf;
}
// Only ids a page can be asked for are links (parse_route refuses longer ones).
std::string tenant_link(const std::string& tenant_id) {
  if (tenant_id.size() > kMaxIdLength) return code(tenant_id);
  return "<a href=\"/tenants/" + e(percent_encode(tenant_id)) + "\">" + e(tenant_id) + "</a>";
}
std::string mchid_link(const std::string& mchid) {
  if (mchid.size() > kMaxIdLength) return code(mchid);
  return "<a href=\"/sub-merchants?mchid=" + e(percent_encode(mchid)) + "\">" + code(mchid) + "</a>";
}

std::string head(const std::string& title, const Live& live) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
      "<meta name=viewport content=\"width=device-width\">";
  // The refresh needs no script (the CSP allows none).
  if (live.refresh_seconds > 0)
    h += "<meta http-equiv=refresh content=\"" + std::to_string(live.refresh_seconds) + "\">";
  h += "<title>" + e(title) + " · callbackd</title><style>" + std::string(kStyle) + "</style></head><body>";
  h += "<nav><a href=\"/\">Overview</a><a href=\"/metrics\">/metrics</a><a href=\"/readyz\">/readyz</a></nav>";
  h += "<h1>" + e(title) + "</h1>";
  h += "<p class=meta>callbackd " + e(live.version) + " · instance " + code(live.instance) + " · generated " +
       e(live.generated_at) + " (database values at most 2 s old)</p>";
  h += "<form method=get action=\"/sub-merchants\"><label>Sub-merchant id <input type=text name=mchid "
       "maxlength=128 required></label> <button type=submit>Show</button></form>";
  return h;
}
constexpr std::string_view kFoot = "</body></html>\n";

long long state_count(const TenantRows& t, std::string_view state) {
  const auto it = t.by_state.find(std::string(state));
  return it == t.by_state.end() ? 0 : it->second;
}

// When the scans' numbers were counted, when they cost enough to be reused for a while.
std::string scans_note(const DatabaseView& db) {
  if (!db.scans_took_ms) return "";
  const auto took = std::chrono::milliseconds{*db.scans_took_ms};
  if (db.scans_age_ms < 1000 && took < std::chrono::milliseconds{100}) return "";
  return "<p class=meta id=scans-age>Rows by state, queue and error groups counted " + seconds_text(db.scans_age_ms) +
         " ago; counting took " + seconds_text(took.count()) + ", so this page counts them again at most every " +
         seconds_text(scans_reused_for(took).count()) + ".</p>";
}

// One row per tenant: what it is set to, what the daemon does with it, its rows by state.
std::string tenants_table(const DatabaseView& db, const Live& live) {
  const auto& tenants = db.tenants;
  const bool counts_skipped = db.counts_skipped;
  std::string h = scans_note(db);
  if (counts_skipped)
    h += "<p class=bad id=counts-skipped>Rows by state and queue sizes are not shown: counting them took longer "
         "than " +
         seconds_text(kScanTimeoutMs) + ". <code>callbackd status</code> counts them without a limit.</p>";
  h += "<table id=tenants><thead><tr><th>tenant</th><th>mode</th>";
  for (const auto s : kStates) h += "<th>" + std::string(s) + "</th>";
  h += "<th>rows</th><th>queued</th><th>oldest queued change</th><th>rate / min</th><th>in flight</th>"
       "<th>pause reason</th><th>lease (rate shares)</th></tr></thead><tbody>";
  for (const auto& t : tenants) {
    const auto lt = live.tenants.find(t.tenant_id);
    long long total = 0;
    for (const auto& [state, n] : t.by_state) total += n;
    h += "<tr data-tenant=\"" + e(t.tenant_id) + "\"><td>" + tenant_link(t.tenant_id) + "</td><td>" + e(t.mode) +
         "</td>";
    // Skipped counts are a dash, never a 0 that would read as "none".
    auto count = [&](long long n) { return counts_skipped ? std::string("—") : number(n); };
    for (const auto s : kStates)
      h += "<td class=n data-state=\"" + std::string(s) + "\">" + count(state_count(t, s)) + "</td>";
    h += "<td class=n data-total>" + count(total) + "</td>";
    h += "<td class=n data-queued>" + count(t.queued) + "</td>";
    h += "<td>" + (t.oldest_change_ms ? seconds_text(*t.oldest_change_ms) : std::string("<span class=meta>—</span>")) +
         "</td>";
    // The effective rate is the running pacer's (lower than configured after a 429); a tenant
    // this instance does not run shows its configured rate.
    if (lt != live.tenants.end()) {
      h += "<td class=n>" + number(std::llround(lt->second.effective_rate_per_minute)) +
           (lt->second.throttled ? " <span class=bad>(throttled)</span>" : "") + " <span class=meta>of " +
           number(t.rate_per_minute) + "</span></td><td class=n>" + std::to_string(lt->second.in_flight) + "</td>";
    } else {
      h += "<td class=n><span class=meta>" + number(t.rate_per_minute) + " (configured)</span></td><td class=n>—</td>";
    }
    std::string reason;
    if (t.mode != "apply") reason = "mode " + e(t.mode);
    if (t.paused_reason)
      reason += (reason.empty() ? "" : "; ") + std::string("<span class=bad>") + e(t.paused_error_code.value_or("")) +
                ": " + e(*t.paused_reason) + "</span>";
    h += "<td>" + (reason.empty() ? std::string("<span class=ok>sending</span>") : reason) + "</td>";
    if (t.holders.empty())
      h += "<td><span class=meta>none</span></td>";
    else {
      h += "<td>";
      for (std::size_t i = 0; i < t.holders.size(); ++i) {
        const auto& holder = t.holders[i];
        const bool mine = holder.instance == live.instance;
        const bool lapsed = holder.lease_left_ms && *holder.lease_left_ms < 0;
        h += (i ? "<br>" : "") + code(holder.instance) + (mine ? " (this instance)" : "");
        // One tenant sent by several instances (rate shares): what each holds of it.
        if (t.shares > 1 || t.holders.size() > 1)
          h += " <span class=meta>" + number(holder.shares) + "/" + number(t.shares) + " shares, " +
               number(holder.rate_per_minute) + "/min</span>";
        if (lapsed) h += " <span class=bad>lapsed</span>";
      }
      h += "</td>";
    }
    h += "</tr>";
  }
  return h + "</tbody></table>";
}

std::string errors_table(const std::vector<ErrorGroup>& groups, bool skipped) {
  if (skipped)
    return "<p id=errors class=bad>Not shown: grouping the rows by error code took longer than " +
           seconds_text(kScanTimeoutMs) + ". <code>callbackd status</code> groups them without a limit.</p>";
  if (groups.empty()) return "<p id=errors class=ok>No retrying or failed rows.</p>";
  std::string h =
      "<table id=errors><thead><tr><th>tenant</th><th>state</th><th>error code</th><th>rows</th>"
      "<th>sub-merchants (first " +
      std::to_string(kSampleMchids) + ")</th></tr></thead><tbody>";
  for (const auto& g : groups) {
    h += "<tr><td>" + tenant_link(g.tenant_id) + "</td><td>" + e(g.state) + "</td><td>" + code(g.error_code) +
         "</td><td class=n data-rows>" + number(g.rows) + "</td><td>";
    for (std::size_t i = 0; i < g.sample_mchids.size(); ++i) h += (i ? " " : "") + mchid_link(g.sample_mchids[i]);
    h += "</td></tr>";
  }
  return h + "</tbody></table>";
}

std::string invalid_table(const std::vector<InvalidRow>& rows) {
  if (rows.empty()) return "<p id=invalid class=ok>No invalid rows.</p>";
  std::string h =
      "<table id=invalid><thead><tr><th>sub-merchant</th><th>tenant</th><th>error</th>"
      "<th>desired notify_url</th><th>since</th></tr></thead><tbody>";
  for (const auto& r : rows)
    h += "<tr><td>" + mchid_link(r.mchid) + "</td><td>" + tenant_link(r.tenant_id) + "</td><td>" + code(r.error_code) +
         " " + e(r.error_message) + "</td><td>" + code_opt(r.notify_url) + "</td><td>" + e(r.changed_at) + "</td></tr>";
  return h + "</tbody></table>";
}

std::string audit_table(const std::vector<AuditRow>& rows) {
  if (rows.empty()) return "<p id=audit class=meta>No audit rows.</p>";
  std::string h =
      "<table id=audit><thead><tr><th>id</th><th>at (UTC)</th><th>tenant</th><th>sub-merchant</th>"
      "<th>outcome</th><th>HTTP</th><th>error</th><th>notify_url</th><th>switch</th><th>instance</th>"
      "</tr></thead><tbody>";
  for (const auto& r : rows) {
    h += "<tr><td class=n>" + std::to_string(r.id) + "</td><td>" + e(r.created_at) + "</td><td>" +
         tenant_link(r.tenant_id) + "</td><td>" + (r.mchid ? mchid_link(*r.mchid) : "<span class=meta>tenant</span>") +
         "</td><td>" + e(r.outcome) + "</td><td class=n>" + (r.http_status ? std::to_string(*r.http_status) : "—") +
         "</td><td>" + (r.error_code ? code(*r.error_code) + " " + e_opt(r.error_message) : "") + "</td><td>" +
         code_opt(r.notify_url) + "</td><td>" + yes_no(r.switch_on) + "</td><td>" + code_opt(r.instance) + "</td></tr>";
  }
  return h + "</tbody></table>";
}

// The overview and a tenant's page are the same lists, of every tenant or of one.
std::string tenants_page(const std::string& title, const DatabaseView& db, const Live& live) {
  std::string h = head(title, live);
  h += "<h2>Tenants</h2>" + tenants_table(db, live);
  h += "<h2>Retrying and failed rows, by error code</h2>" + errors_table(db.errors, db.errors_skipped);
  h += "<h2>Invalid rows (newest " + std::to_string(kInvalidRows) + ")</h2>" + invalid_table(db.invalid);
  h += "<h2>Latest audit rows</h2>" + audit_table(db.audit);
  return h + std::string(kFoot);
}

std::string sub_merchant_page(const Route& route, const DatabaseView& db, const Live& live) {
  std::string h = head("Sub-merchant " + route.argument, live);
  if (!db.sub_merchant) {
    h += "<p id=sub-merchant class=bad>No desired row for sub-merchant " + code(route.argument) +
         " in callbackd.desired_callbacks: callbackd does not manage it.</p>";
  } else {
    const auto& s = *db.sub_merchant;
    auto row = [](const char* name, const std::string& desired, const std::string& applied) {
      return "<tr><th>" + std::string(name) + "</th><td data-desired>" + desired + "</td><td data-applied>" + applied +
             "</td></tr>";
    };
    h += "<table id=sub-merchant><tbody><tr><th>tenant</th><td colspan=2>" + tenant_link(s.tenant_id) +
         "</td></tr><tr><th>state</th><td colspan=2 data-state>" + e(s.state) + (s.queued ? " (queued)" : "") +
         (s.tenant_paused_reason ? " <span class=bad>tenant paused: " + e(*s.tenant_paused_reason) + "</span>" : "") +
         "</td></tr></tbody></table>";
    h +=
        "<table id=values><thead><tr><th></th><th>desired</th><th>applied (last verified answer)</th></tr></thead><tbody>";
    h += row("notify_url", code_opt(s.desired_notify_url), code_opt(s.applied_notify_url));
    h += row("switch", yes_no(s.desired_switch), yes_no(s.applied_switch));
    h += row("changed", e(s.desired_updated_at),
             e_opt(s.update_time) + " <span class=meta>(WeChat Pay's update_time)</span>");
    h += "</tbody></table>";
    h += "<p>Attempts: " + std::to_string(s.attempts) +
         (s.last_http_status ? " · last HTTP status " + std::to_string(*s.last_http_status) : "") +
         (s.last_error_code ? " · last error " + code(*s.last_error_code) + " " + e_opt(s.last_error_message) : "") +
         (s.next_attempt_at ? " · next attempt " + e(*s.next_attempt_at) : "") + "</p>";
    // The live value: what GET /v3/marketing/favor/callbacks last answered (adoption, drift
    // checks). It carries no switch: a switch cannot be read back.
    if (s.live_read_at)
      h += "<p id=live>Live value (read back from WeChat Pay at <span data-live-read-at>" + e(*s.live_read_at) +
           "</span>): notify_url <span data-live>" +
           (s.live_notify_url && !s.live_notify_url->empty() ? code(*s.live_notify_url) : std::string("none set")) +
           "</span> <span class=meta>(the switch cannot be read back)</span></p>";
    else
      h += "<p id=live class=meta>Live value: not read back yet (drift checks, reconciler.drift_check_interval, read "
           "every row in sync once per interval; the switch cannot be read back).</p>";
  }
  h += "<h2>Audit history (newest " + std::to_string(kSubMerchantAuditRows) + ")</h2>" + audit_table(db.audit);
  return h + std::string(kFoot);
}

}  // namespace

std::string Route::key() const {
  switch (kind) {
    case Kind::page:
      return std::string(page == PageKind::overview ? "o" : page == PageKind::tenant ? "t" : "s") + ":" + argument;
    default:
      return "";
  }
}

std::chrono::milliseconds scans_reused_for(std::chrono::milliseconds took) {
  return std::max<std::chrono::milliseconds>(std::chrono::seconds{2}, 20 * took);
}

void carry_scans(DatabaseView& fresh, const DatabaseView& scanned, std::chrono::milliseconds age) {
  std::map<std::string_view, const TenantRows*> earlier;
  for (const auto& t : scanned.tenants) earlier.emplace(t.tenant_id, &t);
  for (auto& t : fresh.tenants) {
    const auto it = earlier.find(t.tenant_id);
    if (it == earlier.end()) continue;
    t.by_state = it->second->by_state;
    t.queued = it->second->queued;
    t.oldest_change_ms = it->second->oldest_change_ms;
  }
  fresh.errors = scanned.errors;
  fresh.counts_skipped = scanned.counts_skipped;
  fresh.errors_skipped = scanned.errors_skipped;
  fresh.scans_took_ms = scanned.scans_took_ms;
  fresh.scans_age_ms = scanned.scans_age_ms + age.count();
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      // A NUL cannot come from PostgreSQL text; a stray control byte is shown, not passed on.
      case '\0':
        out += "&#65533;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::optional<std::string> percent_decode(std::string_view text, bool form) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size()) return std::nullopt;  // "%" or "%4" at the end
      const int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (form && text[i] == '+') {
      out += ' ';
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Route parse_route(std::string_view target) {
  Route r;
  const auto q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
  auto bad = [&](std::string why) {
    r.kind = Route::Kind::bad_request;
    r.error = std::move(why);
    return r;
  };
  auto checked_id = [&](std::string_view raw, bool form, const char* what) -> std::optional<std::string> {
    auto id = percent_decode(raw, form);
    if (!id) {
      bad(std::string("malformed percent-encoding in the ") + what);
      return std::nullopt;
    }
    if (id->empty()) {
      bad(std::string("no ") + what + " given: type one into the form");
      return std::nullopt;
    }
    if (id->size() > kMaxIdLength || id->find('\0') != std::string::npos) {
      bad(std::string("the ") + what + " is longer than " + std::to_string(kMaxIdLength) +
          " bytes or holds a NUL byte");
      return std::nullopt;
    }
    return id;
  };
  if (path == "/") {
    r.kind = Route::Kind::page;
    r.page = PageKind::overview;
    return r;
  }
  constexpr std::string_view kTenants = "/tenants/";
  if (path.substr(0, kTenants.size()) == kTenants) {
    const auto id = checked_id(path.substr(kTenants.size()), false, "tenant id");
    if (!id) return r;
    r.kind = Route::Kind::page;
    r.page = PageKind::tenant;
    r.argument = *id;
    return r;
  }
  if (path == "/sub-merchants") {
    // The form's one field; other parameters are ignored, as browsers add none.
    std::string_view rest = query;
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
      if (pair.substr(0, 6) == "mchid=") {
        const auto id = checked_id(pair.substr(6), true, "sub-merchant id");
        if (!id) return r;
        r.kind = Route::Kind::page;
        r.page = PageKind::sub_merchant;
        r.argument = *id;
        return r;
      }
    }
    return bad("no sub-merchant id given: /sub-merchants?mchid=ID");
  }
  r.kind = Route::Kind::not_found;
  r.error = "no page at this address: try /, /tenants/TENANT, /sub-merchants?mchid=ID, /metrics, /healthz or /readyz";
  return r;
}

std::string render_page(const Route& route, const DatabaseView& db, const Live& live) {
  switch (route.page) {
    case PageKind::overview:
      return tenants_page("Status", db, live);
    case PageKind::tenant:
      if (db.tenants.empty()) {
        Route missing = route;
        missing.kind = Route::Kind::not_found;
        missing.error = "no tenant " + route.argument + " in callbackd.tenants";
        return render_error(missing, live);
      }
      return tenants_page("Tenant " + route.argument, db, live);
    case PageKind::sub_merchant:
      return sub_merchant_page(route, db, live);
  }
  return tenants_page("Status", db, live);
}

std::string render_database_error(const Route& route, const std::string& error, const Live& live) {
  (void)route;
  return head("Database unavailable", live) +
         "<p class=bad id=database-error>The database could not be read: " + e(error) +
         "</p><p>The page tries again on its next load; /readyz says whether the daemon is affected.</p>" +
         std::string(kFoot);
}

std::string render_error(const Route& route, const Live& live) {
  return head(route.kind == Route::Kind::not_found ? "Not found" : "Bad request", live) + "<p class=bad id=error>" +
         e(route.error) + "</p>" + std::string(kFoot);
}

const std::string& content_security_policy() {
  static const std::string policy = "default-src 'none'; style-src 'sha256-" + sha256_base64(kStyle) +
                                    "'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
  return policy;
}

}  // namespace callbackd::status
