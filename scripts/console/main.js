// main.js — the console's entry: which screen the address (#/users, ...)
// asks for, the header with the navigation, and what happens when the
// session starts or ends. Every screen is a function (ctx) -> element that
// loads its own data.
import * as api from "./api.js";
import { h, clear, button } from "./dom.js";
import { loginScreen, registerScreen, forgotScreen, confirmScreen } from "./auth.js";
import { usersScreen } from "./users.js";
import { accountScreen } from "./account.js";
import { adminsScreen } from "./admins.js";
import { auditScreen } from "./audit.js";

// Screens open without a session, and with one.
const PUBLIC = { login: loginScreen, register: registerScreen, forgot: forgotScreen, confirm: confirmScreen };
const PRIVATE = { users: usersScreen, admins: adminsScreen, audit: auditScreen, account: accountScreen };
const NAV = [["users", "Users"], ["admins", "Admins"], ["audit", "Audit trail"], ["account", "My account"]];

const top = document.getElementById("top");
const main = document.getElementById("main");
const notice = document.getElementById("notice");

let wanted = null; // the screen asked for before logging in
let message = null; // shown once by the next screen (why the session ended, ...)
let noticeTimer = null;
let rendered = false;

function route() {
  const m = /^#\/([a-z]+)$/.exec(window.location.hash);
  return m ? m[1] : null;
}

// Rewrites the address without a hashchange (and without a history entry).
function replaceRoute(name) {
  window.history.replaceState(null, "", `#/${name}`);
  return name;
}

// Opens a screen; `note` is shown on it once.
function go(name, note) {
  if (note) message = note;
  if (route() === name) render();
  else window.location.hash = `#/${name}`;
}

function notify(text) {
  notice.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.textContent = ""; }, 8000);
}

function header(session, current) {
  const brand = h("a", { class: "brand", href: session ? "#/users" : "#/login" },
    h("img", { src: "/admin/assets/icon.svg", alt: "" }), "moonkeep admin");
  if (!session) {
    clear(top, h("div", { class: "top-inner" }, brand));
    return;
  }
  const nav = h("nav", { "aria-label": "Main" }, h("ul", { class: "nav" }, NAV.map(([name, label]) =>
    h("li", {}, h("a", { href: `#/${name}`, "aria-current": name === current ? "page" : null }, label)))));
  const out = (everywhere) => async (event) => {
    event.currentTarget.disabled = true;
    await api.logout(everywhere);
  };
  const who = h("div", { class: "who" },
    h("span", { class: "name" }, "Signed in as ", h("strong", {}, session.admin.name)),
    button("Log out", out(false), { class: "small" }),
    button("Log out everywhere", out(true), { class: "small" }));
  clear(top, h("div", { class: "top-inner" }, brand, nav, who));
}

function render() {
  const session = api.current();
  let name = route();
  if (session && !PRIVATE[name]) name = replaceRoute("users");
  if (!session && !PUBLIC[name]) {
    if (PRIVATE[name]) wanted = name;
    name = replaceRoute("login");
  }
  header(session, name);
  const ctx = {
    go, notify,
    message: message,
    loggedIn() {
      const next = wanted || "users";
      wanted = null;
      go(next);
    },
  };
  message = null;
  const screen = (session ? PRIVATE : PUBLIC)[name](ctx);
  clear(main, screen);
  const title = main.querySelector("h1");
  document.title = `${title ? title.textContent : "Admin"} · moonkeep admin`;
  if (title) {
    title.tabIndex = -1;
    // a new screen is announced and keyboard focus starts at its heading
    if (rendered) title.focus();
  }
  rendered = true;
}

api.onSession((session, reason) => {
  if (session) {
    header(session, route());
    return;
  }
  message = reason;
  for (const open of document.querySelectorAll("dialog")) open.close();
  replaceRoute("login");
  render();
});

window.addEventListener("hashchange", () => {
  if (route()) render();
});
render();
