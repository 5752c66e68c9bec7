// audit.js — the audit trail (GET /audit): every state change by or to an
// admin, newest first, filtered by actor, action, target and time, a page
// at a time. A filter the server refuses (422) is shown next to its field.
import * as api from "./api.js";
import { h, field, form, button, time, pagedTable } from "./dom.js";

export const ACTIONS = [
  "admin.registered", "admin.confirmed", "admin.login", "admin.login_failed", "admin.refreshed",
  "admin.refresh_reuse", "admin.logout", "admin.logout_all", "admin.password_changed", "admin.password_reset",
  "admin.email_changed", "admin.updated", "admin.deleted", "user.created", "user.updated", "user.deleted",
  "admin.imported", "user.imported",
];

// datetime-local (the browser's local time) -> RFC 3339 in UTC, whole seconds.
function utc(value) {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function target(e) {
  if (!e.target_type) return "—";
  return h("code", {}, e.target_id === null || e.target_id === undefined
    ? e.target_type : `${e.target_type}:${e.target_id}`);
}

function detail(e) {
  if (!e.detail || (typeof e.detail === "object" && Object.keys(e.detail).length === 0)) return "—";
  return h("pre", { class: "detail" }, JSON.stringify(e.detail));
}

export function auditScreen() {
  let filters = {};
  const table = pagedTable({
    caption: "Audit events", more: "More events",
    load: async (cursor) => {
      try {
        const page = await api.call("GET", "/audit", { query: { ...filters, cursor } });
        return { items: page.events, next: page.next_cursor };
      } catch (e) {
        if (e.status === 404 && !e.fields) {
          e.message = "This server has no audit trail (GET /audit answered 404).";
        }
        throw e;
      }
    },
    empty: () => (Object.keys(filters).length ? "No event matches these filters." : "No events yet."),
    columns: [
      { label: "Time", cell: (e) => time(e.at) },
      { label: "Action", cell: (e) => h("code", {}, e.action) },
      { label: "Actor", cell: (e) => (e.actor_id === null ? "anonymous" : `admin ${e.actor_id}`) },
      { label: "Target", cell: target },
      { label: "Client", cell: (e) => e.client ?? "—" },
      { label: "Request id", cell: (e) => (e.request_id ? h("code", {}, e.request_id) : "—") },
      { label: "Detail", cell: detail },
    ],
  });

  const f = form({ "aria-label": "Filter the audit trail", class: "panel" }, [
    h("div", { class: "filters" },
      field({ label: "Actor (admin id)", name: "actor", inputmode: "numeric", autocomplete: "off" }),
      field({ label: "Action", name: "action", options: [["", "any action"], ...ACTIONS.map((a) => [a, a])] }),
      field({ label: "Target", name: "target", placeholder: "user:12", autocomplete: "off",
              hint: "type:id, e.g. user:12 or admin:3" }),
      field({ label: "Since", name: "since", type: "datetime-local", hint: "Your local time." }),
      field({ label: "Until", name: "until", type: "datetime-local", hint: "Your local time." }),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Apply the filters"),
        button("Clear", () => {
          f.reset();
          f.requestSubmit();
        }))),
  ], async (el) => {
    const v = (name) => el.elements[name].value.trim();
    filters = {};
    for (const [key, value] of Object.entries({
      actor: v("actor"), action: v("action"), target: v("target"), since: utc(v("since")), until: utc(v("until")),
    })) {
      if (value) filters[key] = value;
    }
    await table.reload();
  });

  table.reload().catch(() => {}); // a failure is shown in the table
  return h("div", {},
    h("h1", {}, "Audit trail"),
    h("p", { class: "lead" }, "Every change made by or to an admin, newest first."),
    f, table.element);
}
