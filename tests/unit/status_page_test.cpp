// The status page's pure parts (core/status/page.h): routes, escaping, the CSP's hash.
#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include "core/status/page.h"
#include "core/wechatpay/encoding.h"

using namespace callbackd::status;

namespace {

const std::string kHostile = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>";

Live live() {
  Live l;
  l.instance = "host:1";
  l.version = "0.0.0";
  l.generated_at = "2026-01-01 00:00:00Z";
  return l;
}

Route page(PageKind kind, std::string argument = "") {
  Route r;
  r.kind = Route::Kind::page;
  r.page = kind;
  r.argument = std::move(argument);
  return r;
}

// A view with the hostile text in every field the database could hold it in.
DatabaseView hostile_view() {
  DatabaseView v;
  TenantRows t;
  t.tenant_id = kHostile;
  t.mode = "apply";
  t.rate_per_minute = 1000;
  t.paused_reason = kHostile;
  t.paused_error_code = kHostile;
  t.holders = {{kHostile, 2, 80, 1000}, {"host:1:a", 1, 40, -5}};
  t.shares = 3;
  t.by_state = {{"in_sync", 3}, {"invalid", 1}};
  v.tenants.push_back(t);
  v.errors.push_back({kHostile, "failed", kHostile, 7, {kHostile, "1900000009"}});
  v.invalid.push_back({kHostile, kHostile, kHostile, kHostile, kHostile, "2026-01-01 00:00:00Z"});
  AuditRow a;
  a.id = 1;
  a.created_at = "2026-01-01 00:00:00.000Z";
  a.tenant_id = kHostile;
  a.mchid = kHostile;
  a.outcome = "failed";
  a.error_code = kHostile;
  a.error_message = kHostile;
  a.notify_url = kHostile;
  a.instance = kHostile;
  v.audit.push_back(a);
  SubMerchantRow s;
  s.mchid = kHostile;
  s.tenant_id = kHostile;
  s.state = "invalid";
  s.desired_notify_url = kHostile;
  s.applied_notify_url = kHostile;
  s.update_time = kHostile;
  s.last_error_code = kHostile;
  s.last_error_message = kHostile;
  s.tenant_paused_reason = kHostile;
  v.sub_merchant = s;
  return v;
}

std::string sha256_base64(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr);
  return callbackd::wechatpay::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

}  // namespace

TEST_CASE("status page: every database value is escaped, on every page", "[status_page]") {
  const auto view = hostile_view();
  for (const auto& route :
       {page(PageKind::overview), page(PageKind::tenant, kHostile), page(PageKind::sub_merchant, kHostile)}) {
    const std::string html = render_page(route, view, live());
    INFO(html);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(html.find("alert(1)") != std::string::npos);  // shown, as text
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;&lt;img") != std::string::npos);
  }
  // Error pages carry the request's own text (an id from the URL).
  Route bad;
  bad.kind = Route::Kind::bad_request;
  bad.error = kHostile;
  CHECK(render_error(bad, live()).find("<script") == std::string::npos);
  CHECK(render_database_error(page(PageKind::overview), kHostile, live()).find("<script") == std::string::npos);
}

TEST_CASE("status page: links percent-encode ids, so any id round-trips through parse_route", "[status_page]") {
  const std::string id = "a b/c?d&e=f%#\xe4\xb8\xad";
  CHECK(percent_encode(id) == "a%20b%2Fc%3Fd%26e%3Df%25%23%E4%B8%AD");
  const auto tenant = parse_route("/tenants/" + percent_encode(id));
  CHECK(tenant.kind == Route::Kind::page);
  CHECK(tenant.page == PageKind::tenant);
  CHECK(tenant.argument == id);
  const auto sub = parse_route("/sub-merchants?mchid=" + percent_encode(id));
  CHECK(sub.page == PageKind::sub_merchant);
  CHECK(sub.argument == id);
}

TEST_CASE("status page: routes", "[status_page]") {
  struct Case {
    std::string target;
    Route::Kind kind;
    PageKind page;
    std::string argument;
  };
  const std::vector<Case> cases{
      {"/", Route::Kind::page, PageKind::overview, ""},
      {"/?x=1", Route::Kind::page, PageKind::overview, ""},
      {"/tenants/acme", Route::Kind::page, PageKind::tenant, "acme"},
      {"/tenants/ac%20me", Route::Kind::page, PageKind::tenant, "ac me"},
      {"/tenants/a+b", Route::Kind::page, PageKind::tenant, "a+b"},  // '+' is a space in forms only
      {"/sub-merchants?mchid=1900000001", Route::Kind::page, PageKind::sub_merchant, "1900000001"},
      {"/sub-merchants?x=1&mchid=19+00", Route::Kind::page, PageKind::sub_merchant, "19 00"},
      {"/tenants/", Route::Kind::bad_request, {}, ""},
      {"/tenants/%zz", Route::Kind::bad_request, {}, ""},
      {"/tenants/%4", Route::Kind::bad_request, {}, ""},
      {"/tenants/a%00b", Route::Kind::bad_request, {}, ""},
      {"/tenants/" + std::string(kMaxIdLength + 1, 'a'), Route::Kind::bad_request, {}, ""},
      {"/sub-merchants", Route::Kind::bad_request, {}, ""},
      {"/sub-merchants?mchid=", Route::Kind::bad_request, {}, ""},
      {"/favicon.ico", Route::Kind::not_found, {}, ""},
      {"/tenants", Route::Kind::not_found, {}, ""},
  };
  for (const auto& c : cases) {
    INFO(c.target);
    const auto r = parse_route(c.target);
    CHECK(r.kind == c.kind);
    if (c.kind == Route::Kind::page) {
      CHECK(r.page == c.page);
      CHECK(r.argument == c.argument);
    } else {
      CHECK_FALSE(r.error.empty());
    }
  }
  // One cache entry per page, whatever the spelling.
  CHECK(parse_route("/tenants/ac%20me").key() == parse_route("/tenants/ac me").key());
  CHECK(parse_route("/tenants/x").key() != parse_route("/sub-merchants?mchid=x").key());
}

TEST_CASE("status page: the CSP allows exactly the page's stylesheet and no script", "[status_page]") {
  const std::string html = render_page(page(PageKind::overview), {}, live());
  const auto open = html.find("<style>");
  const auto close = html.find("</style>");
  REQUIRE(open != std::string::npos);
  REQUIRE(close != std::string::npos);
  const std::string style = html.substr(open + 7, close - open - 7);
  const std::string& csp = content_security_policy();
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("style-src 'sha256-" + sha256_base64(style) + "'") != std::string::npos);
  CHECK(csp.find("script-src") == std::string::npos);  // default-src 'none' covers scripts
  CHECK(html.find(" style=") == std::string::npos);    // an attribute would need 'unsafe-inline'
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("http://") == std::string::npos);  // no external asset
  CHECK(html.find("https://") == std::string::npos);
}

TEST_CASE("status page: counts per tenant and state, and an unknown tenant", "[status_page]") {
  DatabaseView v;
  TenantRows t;
  t.tenant_id = "acme";
  t.mode = "observe";
  t.rate_per_minute = 600;
  t.by_state = {{"in_sync", 1234567}, {"failed", 2}};
  t.queued = 5;
  t.oldest_change_ms = 90'000;
  v.tenants.push_back(t);
  const Live l = live();
  const std::string html = render_page(page(PageKind::overview), v, l);
  CHECK(html.find("data-state=\"in_sync\">1&#8239;234&#8239;567<") != std::string::npos);
  CHECK(html.find("data-state=\"failed\">2<") != std::string::npos);
  CHECK(html.find("data-state=\"pending\">0<") != std::string::npos);
  CHECK(html.find("data-total>1&#8239;234&#8239;569<") != std::string::npos);
  CHECK(html.find("data-queued>5<") != std::string::npos);
  CHECK(html.find("1 min 30 s") != std::string::npos);
  CHECK(html.find("mode observe") != std::string::npos);
  CHECK(html.find("href=\"/tenants/acme\"") != std::string::npos);

  CHECK(html.find("<span class=meta>none</span>") != std::string::npos);  // no instance holds a share

  // One tenant sent by two instances (rate shares, migrations/0013): what each holds of it.
  v.tenants[0].shares = 8;
  v.tenants[0].holders = {{"host:1", 5, 375, 20'000}, {"host:2", 3, 225, -1}};
  const std::string shared = render_page(page(PageKind::overview), v, l);
  CHECK(shared.find("host:1</code> (this instance) <span class=meta>5/8 shares, 375/min</span>") != std::string::npos);
  CHECK(shared.find("host:2</code> <span class=meta>3/8 shares, 225/min</span> <span class=bad>lapsed</span>") !=
        std::string::npos);

  const std::string missing = render_page(page(PageKind::tenant, "nobody"), DatabaseView{}, live());
  CHECK(missing.find("no tenant nobody in callbackd.tenants") != std::string::npos);
}

TEST_CASE("status page: counts over the scan timeout are a dash and a note, never zeros", "[status_page]") {
  DatabaseView v;
  TenantRows t;
  t.tenant_id = "acme";
  t.mode = "apply";
  v.tenants.push_back(t);
  v.counts_skipped = true;
  v.errors_skipped = true;
  const std::string html = render_page(page(PageKind::overview), v, live());
  CHECK(html.find("id=counts-skipped") != std::string::npos);
  CHECK(html.find("data-state=\"in_sync\">—<") != std::string::npos);
  CHECK(html.find("data-queued>—<") != std::string::npos);
  CHECK(html.find("grouping the rows by error code took longer than 10.0 s") != std::string::npos);
  CHECK(html.find("No retrying or failed rows") == std::string::npos);
}

TEST_CASE("status page: slow scans are reused for twenty times what they took, never less than 2 s", "[status_page]") {
  using std::chrono::milliseconds;
  CHECK(scans_reused_for(milliseconds{0}) == milliseconds{2000});
  CHECK(scans_reused_for(milliseconds{100}) == milliseconds{2000});
  CHECK(scans_reused_for(milliseconds{101}) == milliseconds{2020});
  // A million rows counted in 2.5 s: at most once per 50 s, a twentieth of one core.
  CHECK(scans_reused_for(milliseconds{2500}) == milliseconds{50'000});
}

TEST_CASE("status page: a fresh answer without scans carries the earlier scans, by tenant, with their age",
          "[status_page]") {
  DatabaseView scanned;
  for (const char* id : {"acme", "gone"}) {
    TenantRows t;
    t.tenant_id = id;
    t.mode = "apply";
    t.by_state = {{"in_sync", 7}, {"failed", 2}};
    t.queued = 3;
    t.oldest_change_ms = 4000;
    scanned.tenants.push_back(t);
  }
  scanned.errors.push_back(ErrorGroup{"acme", "failed", "PARAM_ERROR", 2, {"1", "2"}});
  scanned.errors_skipped = true;
  scanned.scans_took_ms = 2500;

  DatabaseView fresh;
  for (const char* id : {"acme", "new"}) {
    TenantRows t;
    t.tenant_id = id;
    t.mode = "observe";  // what the fresh read says stays
    fresh.tenants.push_back(t);
  }
  carry_scans(fresh, scanned, std::chrono::milliseconds{30'000});
  REQUIRE(fresh.tenants.size() == 2);
  CHECK(fresh.tenants[0].mode == "observe");
  CHECK(fresh.tenants[0].by_state == std::map<std::string, long long>{{"failed", 2}, {"in_sync", 7}});
  CHECK(fresh.tenants[0].queued == 3);
  CHECK(fresh.tenants[0].oldest_change_ms == 4000);
  // A tenant the scans did not see has no counts yet; a tenant gone is not brought back.
  CHECK(fresh.tenants[1].by_state.empty());
  REQUIRE(fresh.errors.size() == 1);
  CHECK(fresh.errors[0].error_code == "PARAM_ERROR");
  CHECK(fresh.errors_skipped);
  CHECK(fresh.scans_took_ms == 2500);
  CHECK(fresh.scans_age_ms == 30'000);

  // The page says how old the numbers are and how often it counts them.
  const std::string html = render_page(page(PageKind::overview), fresh, live());
  CHECK(html.find("id=scans-age>Rows by state, queue and error groups counted 30.0 s ago; counting took 2.5 s, "
                  "so this page counts them again at most every 50.0 s.") != std::string::npos);
  // Cheap and fresh scans need no note.
  DatabaseView quick;
  quick.scans_took_ms = 20;
  CHECK(render_page(page(PageKind::overview), quick, live()).find("id=scans-age") == std::string::npos);
}
