// swagger.mjs — Swagger UI as a person uses it, in Debian's chromium:
// open /apidocs, count the operations, authorize with a bearer token, and
// "Try it out" on GET /users. Prints one JSON line with what it saw (console
// errors include Content-Security-Policy refusals).
//   node spec/browser/swagger.mjs BASE_URL ACCESS_TOKEN
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, token] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "moonkeep-chromium-"));
const result = { operations: 0, listUsersStatus: null, authorized: false, consoleErrors: [], externalRequests: [] };

// A persistent context is how playwright passes --user-data-dir.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
try {
  const page = await context.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") result.consoleErrors.push(msg.text()); });
  page.on("request", (req) => { if (!req.url().startsWith(base)) result.externalRequests.push(req.url()); });
  await page.goto(`${base}/apidocs`, { waitUntil: "networkidle" });
  await page.waitForSelector(".opblock", { timeout: 20000 });
  result.operations = await page.locator(".opblock").count();

  await page.click("button.authorize");
  await page.fill(".modal-ux input[type=text]", token);
  await page.click(".modal-ux button.modal-btn.auth.authorize");
  result.authorized = await page.locator(".modal-ux button.modal-btn.auth").filter({ hasText: "Logout" }).count() > 0;
  await page.click(".modal-ux button.btn-done");
  // the token must live in the page's memory only
  result.tokenStored = await page.evaluate((t) =>
    JSON.stringify(window.localStorage).includes(t) || JSON.stringify(window.sessionStorage).includes(t), token);

  const op = page.locator("#operations-users-listUsers");
  await op.locator(".opblock-summary").first().click();
  await op.locator("button.try-out__btn").click();
  await op.locator("button.execute").click();
  const status = op.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor({ timeout: 20000 });
  result.listUsersStatus = Number((await status.innerText()).trim());
  result.listUsersBody = (await op.locator(".live-responses-table .response-col_description pre").first().innerText()).slice(0, 500);
} catch (e) {
  result.error = String(e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
