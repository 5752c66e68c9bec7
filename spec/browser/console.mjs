// console.mjs — the admin console (/admin) as a person uses it, in Debian's
// chromium: register, read the mail, confirm, log in, manage users, the own
// account, the admins and the audit trail, log out; and the error paths.
// Screenshots of each screen go to SHOTS_DIR. Prints one JSON line:
//   {checks: [{name, ok, detail}], screenshots: [...], consoleErrors, externalRequests,
//    auditAvailable, error}
// (console errors include Content-Security-Policy and Trusted Types refusals).
//   node spec/browser/console.mjs BASE_URL OUTBOX_DIR SHOTS_DIR
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, outbox, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const result = { checks: [], screenshots: [], consoleErrors: [], externalRequests: [], auditAvailable: null };
const tokens = new Set(); // every token the server handed the page
const requestUrls = [];

function check(name, ok, detail) {
  result.checks.push({ name, ok: Boolean(ok), detail: detail === undefined ? null : String(detail) });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- mail, as the outbox folder holds it (server without MAIL_URL) --------

function qpDecode(s) {
  return s.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
}

// The newest message to `to` whose name is not in `seen`, as raw text.
async function mailTo(to, seen = new Set()) {
  for (let i = 0; i < 150; i++) {
    const names = readdirSync(outbox).filter((n) => n.endsWith(".eml") && !seen.has(n))
      .map((n) => ({ n, t: statSync(join(outbox, n)).mtimeMs })).sort((a, b) => b.t - a.t || (a.n < b.n ? 1 : -1));
    for (const { n } of names) {
      const raw = readFileSync(join(outbox, n), "utf8");
      const head = raw.split("\r\n\r\n")[0];
      if (new RegExp(`^to:.*${to.replace(/[.+]/g, "\\$&")}`, "im").test(head)) return { name: n, raw };
    }
    await sleep(100);
  }
  throw new Error(`no mail to ${to} in ${outbox}`);
}

function linkIn(raw, path) {
  const m = qpDecode(raw).match(new RegExp(`${base.replace(/[.]/g, "\\.")}${path}\\?token=[^\\s"<>]+`));
  if (!m) throw new Error(`no ${path} link in the mail`);
  return m[0];
}

// The mails in the server's outbox folder (none before the first one made it).
function mailsIn() {
  try {
    return new Set(readdirSync(outbox));
  } catch (err) {
    if (err.code === "ENOENT") return new Set();
    throw err;
  }
}

// ---- the API directly (a second session, as another browser would have) --

async function apiCall(method, path, body, token) {
  const headers = { Accept: "application/json" };
  if (body) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

// ---- the browser ------------------------------------------------------------

const profile = mkdtempSync(join(tmpdir(), "moonkeep-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 800 },
  locale: "en-GB",
  timezoneId: "UTC",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});

let page;
let shot = 0;
async function screenshot(name, fullPage = false) {
  shot += 1;
  const file = join(shots, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.waitForTimeout(150); // let a transition or a focus ring settle
  await page.screenshot({ path: file, fullPage });
  result.screenshots.push(file);
}

function watch(p) {
  // Chromium logs every non-2xx answer to fetch as "Failed to load resource": the error paths
  // expect those. What counts is anything else: a CSP or Trusted Types refusal, a script error.
  p.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource: the server responded"))
      result.consoleErrors.push(msg.text());
  });
  p.on("pageerror", (err) => result.consoleErrors.push(`page error: ${err.message}`));
  p.on("request", (req) => {
    requestUrls.push(req.url());
    if (!req.url().startsWith(base)) result.externalRequests.push(req.url());
  });
  p.on("response", async (res) => {
    if (!/\/auth\/(login|refresh)$/.test(new URL(res.url()).pathname) || res.status() !== 200) return;
    try {
      const body = await res.json();
      tokens.add(body.access_token);
      tokens.add(body.refresh_token);
    } catch { /* not JSON */ }
  });
}

// Runs `action` and returns the JSON answer of the first response to
// METHOD path (a path prefix when it ends with "*").
async function answer(method, path, action) {
  const wanted = (res) => {
    const u = new URL(res.url());
    const p = path.endsWith("*") ? u.pathname.startsWith(path.slice(0, -1)) : u.pathname === path;
    return p && res.request().method() === method;
  };
  const [res] = await Promise.all([page.waitForResponse(wanted, { timeout: 15000 }), action()]);
  let json = null;
  try { json = await res.json(); } catch { /* 204, or not JSON */ }
  return { status: res.status(), json };
}

const link = (name) => page.getByRole("link", { name, exact: true });
const heading = (text) => page.getByRole("heading", { level: 1, name: text });
const button = (name, where = page) => where.getByRole("button", { name, exact: true });
const errorFor = (scope, field) => scope.locator(`[data-error-for="${field}"]`);
const alertOf = (scope) => scope.locator(".form-error");
const rows = () => page.locator("main table tbody tr");

async function register(email, name, password) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Password").fill(password);
  return answer("POST", "/auth/register", () => button("Create the account").click());
}

async function login(email, password) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  return answer("POST", "/auth/login", () => button("Log in").click());
}

// The database is shared with the other end-to-end specs: everything this
// journey makes carries `stamp`, and it looks its rows up by searching for it.
const stamp = `${Date.now() % 1e8}${Math.floor(Math.random() * 1000)}`;
const grace = `grace.${stamp}@example.com`;
const admin = { email: `console${stamp}@example.com`, name: `console${stamp}`, password: "a long enough passphrase" };

try {
  page = await context.newPage();
  watch(page);

  // ---- 1. log in screen, register with errors, register ----------------
  await page.goto(`${base}/admin`, { waitUntil: "networkidle" });
  await heading("Log in").waitFor();
  check("opens on the log-in screen", true);
  await screenshot("login");

  await link("Create an admin account").click();
  await heading("Create an admin account").waitFor();
  let res = await register("not-an-address", admin.name, "short");
  const regForm = page.locator("form");
  const emailErr = (await errorFor(regForm, "email").innerText()).trim();
  const pwErr = (await errorFor(regForm, "password").innerText()).trim();
  check("422 on register is shown next to each field it names",
    res.status === 422 && emailErr === `Email ${res.json.error.fields.email}`
      && pwErr === `Password ${res.json.error.fields.password}`
      && (await page.getByLabel("Email").getAttribute("aria-invalid")) === "true",
    JSON.stringify({ status: res.status, emailErr, pwErr }));
  check("the form's message is the API's message",
    (await alertOf(regForm).innerText()).includes(res.json.error.message));
  await screenshot("register-invalid");

  res = await register(admin.email, admin.name, admin.password);
  await page.getByText("Check your inbox").waitFor();
  check("registers an admin (201) and says to check the inbox", res.status === 201, res.status);
  await screenshot("register-done");

  // the same email again: 409, shown next to the email field
  await link("Log in").click();
  await link("Create an admin account").click();
  await heading("Create an admin account").waitFor();
  res = await register(admin.email, `${admin.name}x`, admin.password);
  const taken = (await errorFor(page.locator("form"), "email").innerText()).trim();
  check("409 on a taken email is shown next to the email field",
    res.status === 409 && taken === `Email ${res.json.error.fields.email}`, `${res.status} ${taken}`);
  await screenshot("register-taken");

  // ---- 2. log in before confirming: the "confirm your email" path -------
  await link("I have an account: log in").click();
  await heading("Log in").waitFor();
  res = await login(admin.email, admin.password);
  await heading("Confirm your email").waitFor();
  check("an unconfirmed admin is sent to 'confirm your email' with the API's message",
    res.status === 403 && await page.getByText(res.json.error.message).isVisible(), res.status);
  const before = mailsIn();
  res = await answer("POST", "/auth/confirm/resend", () => button("Send the link again").click());
  await page.getByText("a new link is on its way").waitFor();
  check("asks for the confirmation link again (202)", res.status === 202, res.status);
  await screenshot("confirm-resend");

  // ---- 3. the mail, its link -------------------------------------------
  const mail = await mailTo(admin.email, before);
  await page.goto(linkIn(mail.raw, "/auth/confirm"));
  check("the mailed link confirms the address", await page.getByText("Email address confirmed").isVisible());

  // ---- 4. forgot password -----------------------------------------------
  await page.goto(`${base}/admin#/forgot`, { waitUntil: "networkidle" });
  await heading("Forgot your password").waitFor();
  await page.getByLabel("Email").fill(admin.email);
  res = await answer("POST", "/auth/password/forgot", () => button("Mail me a link").click());
  await page.getByText("a link to choose a new password is on its way").waitFor();
  check("'forgot password' asks for a reset link (202)", res.status === 202, res.status);
  await screenshot("forgot");

  // ---- 5. log in: wrong password, then right, by keyboard ---------------
  await link("Back to log in").click();
  await heading("Log in").waitFor();
  res = await login(admin.email, "not the passphrase");
  check("a wrong password shows the API's message",
    res.status === 401 && (await alertOf(page.locator("form")).innerText()).includes(res.json.error.message),
    res.status);
  await screenshot("login-wrong-password");

  await page.getByLabel("Email").fill("");
  await page.getByLabel("Email").focus();
  await page.keyboard.type(admin.email);
  await page.keyboard.press("Tab");
  await page.keyboard.press("Control+A");
  await page.keyboard.type(admin.password);
  res = await answer("POST", "/auth/login", () => page.keyboard.press("Enter"));
  await heading("Users").waitFor();
  check("logs in with the keyboard alone and lands on Users", res.status === 200, res.status);
  await page.getByLabel("Search users").fill(stamp);
  await button("Search").click();
  await page.getByText(`No users match “${stamp}”.`).waitFor();
  check("an empty list says so", true);
  await screenshot("users-empty");

  // ---- 6. users: create, 409, 422 --------------------------------------
  await button("New user").click();
  let dialog = page.getByRole("dialog", { name: "New user" });
  await dialog.getByLabel("Email").fill(grace);
  await dialog.getByLabel("Name").fill("Grace Hopper");
  await screenshot("user-create");
  res = await answer("POST", "/users", () => button("Create the user", dialog).click());
  await dialog.waitFor({ state: "detached" });
  await rows().filter({ hasText: grace }).waitFor();
  check("creates a user from the dialog", res.status === 201, res.status);

  await button("New user").click();
  dialog = page.getByRole("dialog", { name: "New user" });
  await dialog.getByLabel("Email").fill(grace);
  res = await answer("POST", "/users", () => button("Create the user", dialog).click());
  const userTaken = (await errorFor(dialog, "email").innerText()).trim();
  check("409 on a taken user email is shown next to the email field",
    res.status === 409 && userTaken === `Email ${res.json.error.fields.email}`, `${res.status} ${userTaken}`);
  await screenshot("user-conflict");
  await dialog.getByLabel("Email").fill("grace@");
  await dialog.getByLabel("Name").fill("x".repeat(101));
  res = await answer("POST", "/users", () => button("Create the user", dialog).click());
  const badEmail = (await errorFor(dialog, "email").innerText()).trim();
  const longName = (await errorFor(dialog, "name").innerText()).trim();
  check("422 on a user is shown next to each field it names",
    res.status === 422 && badEmail === `Email ${res.json.error.fields.email}`
      && longName === `Name ${res.json.error.fields.name}`, `${res.status} ${badEmail} / ${longName}`);
  await screenshot("user-invalid");
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });
  check("Escape closes a dialog and focus goes back to its button",
    await page.evaluate(() => document.activeElement?.textContent) === "New user");

  // ---- 7. many users: pages with "More", search ------------------------
  let apiSession = (await apiCall("POST", "/auth/login", { email: admin.email, password: admin.password })).json;
  for (let i = 1; i <= 22; i++) {
    const user = { email: `bulk${i}.${stamp}@example.com`, name: `Bulk ${i}` };
    let r = await apiCall("POST", "/users", user, apiSession.access_token);
    if (r.status === 401) { // the 5 s access token ran out (a slow, sanitized build)
      apiSession = (await apiCall("POST", "/auth/refresh", { refresh_token: apiSession.refresh_token })).json;
      r = await apiCall("POST", "/users", user, apiSession.access_token);
    }
    if (r.status !== 201) throw new Error(`seeding users: ${r.status}`);
  }
  await page.getByLabel("Search users").fill(stamp);
  await answer("GET", "/users", () => button("Search").click());
  await page.waitForFunction(() => document.querySelectorAll("main tbody tr").length === 20);
  const firstPage = await rows().count();
  res = await answer("GET", "/users", () => button("More users").click());
  await page.waitForFunction(() => document.querySelectorAll("main tbody tr").length > 20);
  check("lists 20 users, then the rest with 'More users'",
    firstPage === 20 && await rows().count() === 23 && await button("More users").isHidden(),
    `${firstPage} then ${await rows().count()}`);
  await screenshot("users-list", true);

  await page.getByLabel("Search users").fill(`GRACE.${stamp}`);
  res = await answer("GET", "/users", () => button("Search").click());
  await page.waitForFunction(() => document.querySelectorAll("main tbody tr").length === 1);
  check("searches users (q, case-insensitive)", res.status === 200 && await rows().count() === 1);
  await screenshot("users-search");

  // ---- 8. edit, delete -------------------------------------------------
  await page.getByRole("button", { name: `Edit ${grace}` }).click();
  dialog = page.getByRole("dialog", { name: `Edit ${grace}` });
  await dialog.getByLabel("Name").fill("Grace B. Hopper");
  await dialog.getByLabel("Active").uncheck();
  await screenshot("user-edit");
  res = await answer("PUT", "/users/*", () => button("Save", dialog).click());
  await dialog.waitFor({ state: "detached" });
  const edited = rows().filter({ hasText: "Grace B. Hopper" });
  await edited.waitFor();
  check("edits a user's name and active flag",
    res.status === 200 && res.json.user.active === false && (await edited.innerText()).includes("inactive"));
  const graceId = res.json.user.id;

  await page.getByRole("button", { name: `Delete ${grace}` }).click();
  dialog = page.getByRole("dialog", { name: `Delete ${grace}?` });
  await dialog.waitFor();
  check("the delete confirmation starts on Cancel",
    await page.evaluate(() => document.activeElement?.textContent) === "Cancel");
  await screenshot("user-delete");
  res = await answer("DELETE", "/users/*", () => button("Delete the user", dialog).click());
  await page.getByText(`No users match “GRACE.${stamp}”.`).waitFor();
  check("deletes a user after the confirmation", res.status === 200 && res.json.user.id === graceId);

  // ---- 9. admins ---------------------------------------------------------
  await link("Admins").click();
  await heading("Admins").waitFor();
  await page.getByLabel("Search admins").fill(stamp);
  await button("Search").click();
  await rows().filter({ hasText: admin.email }).waitFor();
  check("lists the admins", true);
  await screenshot("admins");

  // ---- 10. own account ---------------------------------------------------
  await link("My account").click();
  await heading("My account").waitFor();
  const nameForm = page.getByRole("form", { name: "Change your name" });
  admin.name = `${admin.name}b`;
  await nameForm.getByLabel("Name").fill(admin.name);
  res = await answer("PUT", "/auth/me", () => button("Save the name", nameForm).click());
  await page.locator("header").getByText(admin.name, { exact: true }).waitFor();
  check("changes the name (shown in the header)", res.status === 200, res.status);

  const emailForm = page.getByRole("form", { name: "Change your email" });
  const newEmail = `moved${stamp}@example.com`;
  await emailForm.getByLabel("New email").fill(newEmail);
  res = await answer("PUT", "/auth/me", () => button("Change the email", emailForm).click());
  const needPassword = (await errorFor(emailForm, "current_password").innerText()).trim();
  check("changing the email without the current password is refused next to that field",
    res.status === 422 && needPassword === `Current password ${res.json.error.fields.current_password}`,
    `${res.status} ${needPassword}`);
  await emailForm.getByLabel("Current password").fill(admin.password);
  res = await answer("PUT", "/auth/me", () => button("Change the email", emailForm).click());
  await page.getByText(`${newEmail} is not confirmed yet`).waitFor();
  check("a new email is shown unconfirmed", res.status === 200 && res.json.admin.confirmed === false);
  await screenshot("account-unconfirmed", true);
  admin.email = newEmail;
  // the new address is confirmed in another tab; the console keeps its session
  const other = await context.newPage();
  await other.goto(linkIn((await mailTo(newEmail)).raw, "/auth/confirm"));
  check("the new address's link confirms it", await other.getByText("Email address confirmed").isVisible());
  await other.close();

  await link("Users").click();
  await heading("Users").waitFor();
  await link("My account").click();
  await page.locator("dl.facts").getByText("confirmed", { exact: true }).waitFor();
  check("the account shows the address confirmed after its link", true);

  const passwordForm = page.getByRole("form", { name: "Change your password" });
  await passwordForm.getByLabel("New password", { exact: true }).fill("another long passphrase");
  await passwordForm.getByLabel("New password again").fill("another long passphrase!");
  await button("Change the password", passwordForm).click();
  check("two different new passwords are refused next to the second",
    (await errorFor(passwordForm, "again").innerText()).includes("is not the same"));
  await passwordForm.getByLabel("New password again").fill("another long passphrase");
  await passwordForm.getByLabel("Current password").fill(admin.password);
  res = await answer("PUT", "/auth/me", () => button("Change the password", passwordForm).click());
  check("changes the password with the current one", res.status === 200, res.status);
  admin.password = "another long passphrase";
  await screenshot("account", true);

  // ---- 11. the audit trail ---------------------------------------------
  await link("Audit trail").click();
  await heading("Audit trail").waitFor();
  res = await answer("GET", "/audit", () => page.reload({ waitUntil: "networkidle" }).then(async () => {
    // a reload forgets the session (memory only): log in again
    await heading("Log in").waitFor();
    await login(admin.email, admin.password);
  }));
  // the GET /audit of the screen reached after logging in
  check("a reload asks to log in again and comes back to the screen asked for",
    await heading("Audit trail").isVisible());
  result.auditAvailable = res.status !== 404;
  if (result.auditAvailable) {
    await rows().first().waitFor();
    await screenshot("audit-all", true);
    const filters = page.getByRole("form", { name: "Filter the audit trail" });
    await filters.getByLabel("Action").selectOption("user.deleted");
    res = await answer("GET", "/audit", () => button("Apply the filters", filters).click());
    await rows().filter({ hasText: `user:${graceId}` }).waitFor();
    check("the audit trail shows the user deletion, filtered by action",
      res.status === 200 && res.json.events.length >= 1 && res.json.events.every((e) => e.action === "user.deleted"));
    await screenshot("audit-filtered", true);
    await filters.getByLabel("Action").selectOption("");
    await filters.getByLabel("Target").fill(`user:${graceId}`);
    res = await answer("GET", "/audit", () => button("Apply the filters", filters).click());
    const actions = new Set(res.json.events.map((e) => e.action));
    check("the audit trail has the user's creation, update and deletion, filtered by target",
      res.status === 200 && actions.has("user.created") && actions.has("user.updated") && actions.has("user.deleted"),
      [...actions].join(","));
    // since/until are the browser's local time (UTC here), sent as RFC 3339
    const local = (ms) => new Date(ms).toISOString().slice(0, 16);
    await filters.getByLabel("Since").fill(local(Date.now() - 3600e3));
    await filters.getByLabel("Until").fill(local(Date.now() + 3600e3));
    res = await answer("GET", "/audit*", () => button("Apply the filters", filters).click());
    const within = res.json.events.length;
    await filters.getByLabel("Since").fill(local(Date.now() + 3600e3));
    await filters.getByLabel("Until").fill("");
    res = await answer("GET", "/audit*", () => button("Apply the filters", filters).click());
    await page.getByText("No event matches these filters.").waitFor();
    check("filters the audit trail by time (since, until)", within >= 3 && res.json.events.length === 0,
      `${within} then ${res.json.events.length}`);
    await filters.getByLabel("Since").fill("");
    await filters.getByLabel("Target").fill("");
    await filters.getByLabel("Actor (admin id)").fill("abc");
    res = await answer("GET", "/audit", () => button("Apply the filters", filters).click());
    const actorErr = (await errorFor(filters, "actor").innerText()).trim();
    check("a refused audit filter (422) is shown next to its field",
      res.status === 422 && actorErr === `Actor (admin id) ${res.json.error.fields.actor}`, `${res.status} ${actorErr}`);
    await screenshot("audit-invalid-filter");
  } else {
    await page.getByText("This server has no audit trail").waitFor();
    check("without GET /audit the screen says so", true);
    await screenshot("audit-unavailable");
  }

  // ---- 12. renewal, an ended session, log out, log out everywhere --------
  const refreshes = requestUrls.filter((u) => u.endsWith("/auth/refresh")).length;
  check("the access token was renewed with the refresh token (POST /auth/refresh)", refreshes > 0, refreshes);

  apiSession = (await apiCall("POST", "/auth/login", { email: admin.email, password: admin.password })).json;
  const out = await apiCall("POST", "/auth/logout?all=true", null, apiSession.access_token);
  if (out.status !== 204) throw new Error(`logout all from the API: ${out.status}`);
  await link("Users").click();
  await heading("Log in").waitFor();
  await page.getByText("Your session has ended").waitFor();
  check("a session ended elsewhere sends the console back to log in, saying why", true);
  await screenshot("session-ended");

  await login(admin.email, admin.password);
  await heading("Users").waitFor();
  await button("Log out").click();
  await heading("Log in").waitFor();
  await page.getByText("You are logged out.").waitFor();
  check("logs out", true);
  await screenshot("logged-out");

  apiSession = (await apiCall("POST", "/auth/login", { email: admin.email, password: admin.password })).json;
  await login(admin.email, admin.password);
  await heading("Users").waitFor();
  await button("Log out everywhere").click();
  await page.getByText("You are logged out everywhere.").waitFor();
  // the other session's refresh token (long-lived) no longer renews it
  const after = await apiCall("POST", "/auth/refresh", { refresh_token: apiSession.refresh_token });
  check("'log out everywhere' ends the other sessions too", after.status === 401, after.status);

  // ---- 13. no token at rest, none in a URL ------------------------------
  const stored = await page.evaluate(() => JSON.stringify(window.localStorage) + JSON.stringify(window.sessionStorage)
    + document.cookie);
  const cookies = JSON.stringify(await context.cookies());
  const leaked = [...tokens].filter((t) => t && (stored.includes(t) || cookies.includes(t)));
  check("no token is kept in browser storage or cookies", tokens.size > 0 && leaked.length === 0, leaked.length);
  const inUrl = requestUrls.filter((u) => [...tokens].some((t) => t && u.includes(t)));
  check("no token is ever in a URL", inUrl.length === 0, inUrl.join(" "));

  // ---- 14. delete the account ------------------------------------------
  await login(admin.email, admin.password);
  await heading("Users").waitFor();
  await link("My account").click();
  await button("Delete my account…").click();
  dialog = page.getByRole("dialog", { name: "Delete your account?" });
  await dialog.getByLabel("Current password").fill("not the passphrase");
  res = await answer("DELETE", "/auth/me", () => button("Delete my account", dialog).click());
  await alertOf(dialog).filter({ hasText: res.json.error.message }).waitFor();
  check("a wrong password does not delete the account, and does not end the session",
    res.status === 401 && await heading("My account").isVisible());
  await screenshot("account-delete");
  await dialog.getByLabel("Current password").fill(admin.password);
  res = await answer("DELETE", "/auth/me", () => button("Delete my account", dialog).click());
  await page.getByText("Your account has been deleted.").waitFor();
  const gone = await apiCall("POST", "/auth/login", { email: admin.email, password: admin.password });
  check("deletes the account (204) and logs out", res.status === 204 && gone.status === 401, gone.status);
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  try { await screenshot("failure", true); } catch { /* the page is gone */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
