// Drives the embedded dashboard in Debian's Chromium (playwright-core, no bundled browser) the
// way its users would, and saves a screenshot of each view.
//
//   node dashboard.mjs CONFIG.json
//
// CONFIG: {base, admin, isp, ispIp, otherIp, known, shots, chromium}. Prints one JSON line of
// what it saw; exits non-zero with the reason when a check fails.

import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
mkdirSync(cfg.shots, { recursive: true });
const seen = {};

function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
}

async function number(page, sel) {
  const t = (await page.locator(sel).first().textContent()) ?? "";
  const n = Number(t.replace(/[^0-9.]/g, ""));
  return Number.isFinite(n) ? n : NaN;
}

async function signIn(page, token) {
  await page.goto(`${cfg.base}/#/`);
  const signout = page.locator("#signout");
  if (await signout.isVisible().catch(() => false)) {
    await signout.click();
  }
  await page.fill("#signin-token", token);
  await page.click("#signin-submit");
}

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => d.accept());

  // 1. The live overview moves without a reload.
  await page.goto(`${cfg.base}/#/`);
  await page.waitForFunction(
    () => /[0-9]/.test(document.querySelector("#overview-total-checkins")?.textContent ?? ""),
    null,
    { timeout: 15000 },
  );
  const before = await number(page, "#overview-total-checkins");
  await page.waitForFunction(
    (b) => {
      const t = document.querySelector("#overview-total-checkins")?.textContent ?? "";
      return Number(t.replace(/[^0-9.]/g, "")) > b;
    },
    before,
    { timeout: 15000 },
  );
  seen.overview_before = before;
  seen.overview_after = await number(page, "#overview-total-checkins");
  await page.screenshot({ path: join(cfg.shots, "overview.png"), fullPage: true });

  // 2. An ISP sees its own infections, and only those.
  await signIn(page, cfg.isp);
  await page.goto(`${cfg.base}/#/me`);
  await page.waitForFunction(
    (ip) => (document.querySelector("#me-stream-table")?.textContent ?? "").includes(ip),
    cfg.ispIp,
    { timeout: 20000 },
  );
  const stream = (await page.locator("#me-stream-table").textContent()) ?? "";
  check(!stream.includes(cfg.otherIp), "the ISP's stream shows another network's infection");
  await page.waitForFunction(
    (ip) => (document.querySelector("#me-report-table")?.textContent ?? "").includes(ip),
    cfg.ispIp,
    { timeout: 20000 },
  );
  const report = (await page.locator("#me-report-table").textContent()) ?? "";
  check(!report.includes(cfg.otherIp), "the ISP's report shows another network's infection");
  seen.member_stream_count = await number(page, "#me-stream-count");
  await page.screenshot({ path: join(cfg.shots, "member.png"), fullPage: true });

  // 3. A threat page with its playbook.
  await page.goto(`${cfg.base}/#/threats/emotet`);
  await page.waitForFunction(
    () => (document.querySelector("#threat-playbook")?.textContent ?? "").length > 200,
    null,
    { timeout: 15000 },
  );
  const playbook = (await page.locator("#threat-playbook").textContent()) ?? "";
  check(/clean/i.test(playbook) && /verify/i.test(playbook), "the playbook has its sections");
  seen.playbook_chars = playbook.length;
  await page.screenshot({ path: join(cfg.shots, "threat.png"), fullPage: true });

  // 4. The lookup box.
  await page.goto(`${cfg.base}/#/lookup`);
  await page.fill("#lookup-input", `${cfg.known}\n192.0.2.1`);
  await page.click("#lookup-submit");
  await page.waitForFunction(
    (v) => (document.querySelector("#lookup-results")?.textContent ?? "").includes(v),
    cfg.known,
    { timeout: 15000 },
  );
  const results = (await page.locator("#lookup-results").textContent()) ?? "";
  check(results.includes("192.0.2.1"), "every value gets a verdict");
  seen.lookup = results.slice(0, 200);
  await page.screenshot({ path: join(cfg.shots, "lookup.png"), fullPage: true });

  // 5. Admin: create a token, then revoke it.
  await signIn(page, cfg.admin);
  await page.goto(`${cfg.base}/#/admin`);
  await page.waitForFunction(
    () => (document.querySelector("#admin-orgs")?.textContent ?? "").includes("Browser ISP"),
    null,
    { timeout: 15000 },
  );
  // The sensors' health: the test's events come from sensor "test".
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll("#admin-sensor-activity tbody th")].some(
        (th) => th.textContent.trim() === "test",
      ),
    null,
    { timeout: 15000 },
  );
  const revokes = () => page.locator('[data-testid^="revoke-"]').count();
  const n0 = await revokes();
  await page.click("#admin-create-token");
  await page.waitForFunction(
    (n) => document.querySelectorAll('[data-testid^="revoke-"]').length > n,
    n0,
    { timeout: 15000 },
  );
  const last = page.locator('[data-testid^="revoke-"]').last();
  const id = (await last.getAttribute("data-testid")) ?? "";
  await last.click();
  await page.waitForFunction(
    (tid) => !document.querySelector(`[data-testid="${tid}"]`),
    id,
    { timeout: 15000 },
  );
  seen.revoked = id.replace("revoke-", "");
  await page.screenshot({ path: join(cfg.shots, "admin.png"), fullPage: true });

  check(errors.length === 0, `no script errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, ...seen }));
} finally {
  await browser.close();
}
