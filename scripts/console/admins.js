// admins.js — every admin of this server (GET /auth/admins), searchable.
import { h, time, badge } from "./dom.js";
import { searchableList } from "./users.js";

export function adminsScreen() {
  const { table, search } = searchableList({
    path: "/auth/admins", key: "admins", caption: "Admins", more: "More admins",
    noneYet: "No admins.",
    columns: [
      { label: "Id", cell: (a) => String(a.id), class: "num" },
      { label: "Email", cell: (a) => a.email },
      { label: "Name", cell: (a) => a.name },
      { label: "Email confirmed", cell: (a) => badge(a.confirmed, "confirmed", "not confirmed", "warn") },
      { label: "Registered", cell: (a) => time(a.created_at) },
      { label: "Updated", cell: (a) => time(a.updated_at) },
    ],
  });
  table.reload().catch(() => {}); // a failure is shown in the table
  return h("div", {},
    h("h1", {}, "Admins"),
    h("p", { class: "lead" }, "Everyone who can log in to this console. An admin registers on the log-in "
      + "screen and confirms the address by mail."),
    h("div", { class: "toolbar" }, search),
    table.element);
}
