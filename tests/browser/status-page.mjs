// The status page in a real browser (tests/e2e/status_page_e2etest.cpp runs this against a
// running daemon). Debian's chromium, headless, driven by playwright-core; no browser is
// downloaded. This script only LOOKS: it loads the page, reads what a person would read,
// follows links and the search form, saves a screenshot, and prints what it saw as one JSON
// object on stdout. The C++ test compares that with SQL.
//   node status-page.mjs BASE_URL SEARCH_MCHID OUT_DIR
// Exit status: 0 when every step ran (whatever it saw), 1 when a step could not run.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const [base, searchMchid, outDir] = process.argv.slice(2);
if (!base || !searchMchid || !outDir) {
  console.error('usage: node status-page.mjs BASE_URL SEARCH_MCHID OUT_DIR');
  process.exit(2);
}

// A fresh profile each run; no network but the page's own (every background service off).
const profile = mkdtempSync(join(tmpdir(), 'callbackd-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
  timeout: 60_000,
});
const seen = { dialogs: 0, console: [], requests: [] };
try {
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  // An alert() would mean a hostile value ran as script; a CSP report means something tried.
  page.on('dialog', async (d) => { seen.dialogs += 1; await d.dismiss(); });
  page.on('console', (m) => seen.console.push(m.text()));
  page.on('request', (r) => seen.requests.push(r.url()));

  const text = (s) => (s || '').replace(/[\u202f\s]+/g, ' ').trim();
  const number = (s) => Number(text(s).replace(/ /g, ''));
  // What a table says: the tenants' counts, the error groups, the invalid rows.
  const readOverview = async () => ({
    title: text(await page.locator('h1').textContent()),
    tenants: await page.$$eval('#tenants tbody tr', (rows) => rows.map((r) => ({
      tenant: r.querySelector('td a, td code').textContent,
      states: Object.fromEntries([...r.querySelectorAll('td[data-state]')].map(
        (c) => [c.dataset.state, c.textContent])),
      total: r.querySelector('td[data-total]').textContent,
      queued: r.querySelector('td[data-queued]').textContent,
    }))),
    errors: await page.$$eval('#errors tbody tr', (rows) => rows.map((r) => ({
      tenant: r.cells[0].textContent, state: r.cells[1].textContent, code: r.cells[2].textContent,
      rows: r.cells[3].textContent, mchids: [...r.cells[4].querySelectorAll('a')].map((a) => a.textContent),
    }))),
    invalid: await page.$$eval('#invalid tbody tr', (rows) => rows.map((r) => ({
      mchid: r.cells[0].textContent, notify_url: r.cells[3].textContent,
    }))),
    audit_ids: await page.$$eval('#audit tbody tr', (rows) => rows.map((r) => r.cells[0].textContent)),
    scripts: await page.locator('script').count(),
    images: await page.locator('img').count(),
  });
  const normalise = (o) => {
    for (const t of o.tenants) {
      for (const k of Object.keys(t.states)) t.states[k] = number(t.states[k]);
      t.total = number(t.total);
      t.queued = number(t.queued);
    }
    for (const g of o.errors) g.rows = number(g.rows);
    o.audit_ids = o.audit_ids.map(number);
    return o;
  };

  const response = await page.goto(base + '/', { waitUntil: 'load' });
  const overview = normalise(await readOverview());
  overview.status = response.status();
  overview.csp = response.headers()['content-security-policy'] || '';
  overview.content_type = response.headers()['content-type'] || '';
  await page.screenshot({ path: join(outDir, 'status-page.png'), fullPage: true });

  // The first tenant's link, as a person would click it.
  const firstTenant = overview.tenants[0].tenant;
  await Promise.all([page.waitForURL('**/tenants/**'), page.locator('#tenants tbody tr a').first().click()]);
  const tenant = normalise(await readOverview());
  tenant.url = page.url();
  tenant.clicked = firstTenant;

  // Back, then the first sub-merchant of the first error group.
  await page.goto(base + '/');
  let errorLink = null;
  if (overview.errors.length > 0) {
    await Promise.all([page.waitForURL('**/sub-merchants?**'), page.locator('#errors tbody td:nth-child(5) a').first().click()]);
    errorLink = {
      url: page.url(),
      title: text(await page.locator('h1').textContent()),
      state: text(await page.locator('#sub-merchant td[data-state]').textContent()),
      desired_notify_url: text(await page.locator('#values tbody tr').first().locator('td[data-desired]').textContent()),
      audit_rows: await page.locator('#audit tbody tr').count(),
    };
  }

  // The search form, typed into and submitted (a GET form: no script involved).
  await page.goto(base + '/');
  await page.locator('input[name=mchid]').fill(searchMchid);
  await Promise.all([page.waitForURL('**/sub-merchants?**'), page.locator('form button[type=submit]').click()]);
  const search = {
    url: page.url(),
    title: text(await page.locator('h1').textContent()),
    found: (await page.locator('#values').count()) > 0,
    state: (await page.locator('#sub-merchant td[data-state]').count())
      ? text(await page.locator('#sub-merchant td[data-state]').textContent()) : null,
    desired_notify_url: (await page.locator('#values').count())
      ? await page.locator('#values tbody tr').first().locator('td[data-desired]').textContent() : null,
    audit_rows: await page.locator('#audit tbody tr').count(),
    scripts: await page.locator('script').count(),
    images: await page.locator('img').count(),
  };
  await page.screenshot({ path: join(outDir, 'status-page-sub-merchant.png'), fullPage: true });

  const external = seen.requests.filter((u) => !u.startsWith(base));
  console.log(JSON.stringify({ overview, tenant, error_link: errorLink, search, dialogs: seen.dialogs,
                               console: seen.console, external_requests: external }));
} catch (e) {
  console.error('status-page.mjs: ' + (e && e.stack ? e.stack : e));
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
