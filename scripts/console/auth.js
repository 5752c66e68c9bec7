// auth.js — the screens before a session: log in, register, "confirm your
// email" (ask for the link again) and "forgot password". The links the
// mails carry open the server's own pages (/auth/confirm, the reset form),
// never this console, so no token passes through it.
import * as api from "./api.js";
import { h, clear, field, form } from "./dom.js";

let lastEmail = ""; // carried from one of these screens to the next

function submit(label) {
  return h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, label));
}

function links(...items) {
  return h("ul", { class: "links" }, items.map(([href, text]) => h("li", {}, h("a", { href }, text))));
}

function panel(title, ...children) {
  return h("div", { class: "panel narrow" }, h("h1", {}, title), children);
}

function emailField(value) {
  return field({ label: "Email", name: "email", type: "email", autocomplete: "username", value, required: true });
}

function note(message, kind = "info") {
  return message ? h("p", { class: kind, role: "status" }, message) : null;
}

export function loginScreen(ctx) {
  const f = form({ "aria-label": "Log in" }, [
    emailField(lastEmail),
    field({ label: "Password", name: "password", type: "password", autocomplete: "current-password", required: true }),
    submit("Log in"),
  ], async (el) => {
    const email = el.elements.email.value.trim();
    lastEmail = email;
    try {
      await api.login(email, el.elements.password.value);
    } catch (e) {
      if (e.code === "account_not_confirmed") {
        ctx.go("confirm", e.message);
        return;
      }
      throw e;
    }
    ctx.loggedIn();
  });
  return panel("Log in", note(ctx.message), f, links(
    ["#/forgot", "Forgot your password?"],
    ["#/confirm", "Did not get the confirmation mail?"],
    ["#/register", "Create an admin account"],
  ));
}

// A form that posts {email} to `path` (always 202: the answer never says
// whether the address exists) and then says what happens next.
function emailRequest(path, label, done) {
  const out = h("div");
  const f = form({ "aria-label": label }, [emailField(lastEmail), submit(label)], async (el) => {
    const email = el.elements.email.value.trim();
    lastEmail = email;
    await api.anonymous("POST", path, { email });
    clear(out, note(done(email), "done"));
  });
  return [out, f];
}

export function confirmScreen(ctx) {
  return panel("Confirm your email", note(ctx.message),
    h("p", {}, "An admin logs in once the email address is confirmed. Open the link in the mail we sent "
      + "(it works for 24 hours), or ask for a new one here."),
    emailRequest("/auth/confirm/resend", "Send the link again", (email) =>
      `If ${email} belongs to an admin who has not confirmed it yet, a new link is on its way. `
      + "Open it, then log in."),
    links(["#/login", "Back to log in"]));
}

export function forgotScreen() {
  return panel("Forgot your password",
    h("p", {}, "We mail a link to a page where you choose a new password. It works for 30 minutes, once, "
      + "and using it logs you out everywhere."),
    emailRequest("/auth/password/forgot", "Mail me a link", (email) =>
      `If ${email} belongs to an admin, a link to choose a new password is on its way.`),
    links(["#/login", "Back to log in"]));
}

export function registerScreen() {
  const body = h("div");
  const f = form({ "aria-label": "Create an admin account" }, [
    emailField(lastEmail),
    field({ label: "Name", name: "name", autocomplete: "nickname", required: true,
            hint: "3 to 32 letters, digits, _ - or ." }),
    field({ label: "Password", name: "password", type: "password", autocomplete: "new-password", required: true,
            hint: "8 to 128 characters, not your email or name." }),
    submit("Create the account"),
  ], async (el) => {
    const email = el.elements.email.value.trim();
    await api.anonymous("POST", "/auth/register",
      { email, name: el.elements.name.value.trim(), password: el.elements.password.value });
    lastEmail = email;
    clear(body, note(`Check your inbox: we sent a confirmation link to ${email}. Open it, then log in.`, "done"),
      links(["#/login", "Log in"], ["#/confirm", "No mail? Send the link again"]));
  });
  body.append(f, links(["#/login", "I have an account: log in"]));
  return panel("Create an admin account", body);
}
