// users.js — the users admins manage: search (q), pages with a cursor,
// create, edit (email, name, active) and delete with a confirmation.
import * as api from "./api.js";
import { h, field, form, button, dialog, time, badge, pagedTable } from "./dom.js";

function actions(...children) {
  return h("div", { class: "actions" }, children);
}

// Searchable list over GET `path` ({<key>: [...], next_cursor}), shared
// with the admins screen.
export function searchableList({ path, key, caption, columns, noneYet, more }) {
  let q = "";
  const table = pagedTable({
    caption, columns, more,
    load: async (cursor) => {
      const page = await api.call("GET", path, { query: { q, cursor } });
      return { items: page[key], next: page.next_cursor };
    },
    empty: () => (q ? `No ${key} match “${q}”.` : noneYet),
  });
  const search = form({ role: "search", "aria-label": `${caption}: search` }, [
    field({ label: `Search ${key}`, name: "q", type: "search", placeholder: "part of an email or a name" }),
    h("button", { type: "submit" }, "Search"),
  ], async (el) => {
    q = el.elements.q.value.trim();
    await table.reload();
  });
  return { table, search };
}

function userForm(user, close, save) {
  return form({}, [
    field({ label: "Email", name: "email", type: "email", value: user?.email, autocomplete: "off", required: true }),
    field({ label: "Name", name: "name", value: user?.name ?? "", autocomplete: "off",
            hint: "Optional, at most 100 characters." }),
    field({ label: "Active", name: "active", type: "checkbox", checked: user ? user.active : true }),
    actions(h("button", { type: "submit", class: "primary" }, user ? "Save" : "Create the user"),
      button("Cancel", close)),
  ], async (el) => {
    const name = el.elements.name.value;
    const body = { email: el.elements.email.value.trim(), active: el.elements.active.checked };
    // an emptied name clears it; a new user simply has none
    if (name.trim() !== "") body.name = name;
    else if (user) body.name = null;
    const saved = await save(body);
    close();
    return saved;
  });
}

export function usersScreen(ctx) {
  const { table, search } = searchableList({
    path: "/users", key: "users", caption: "Users", more: "More users",
    noneYet: "No users yet. Create the first one with “New user”.",
    columns: [
      { label: "Id", cell: (u) => String(u.id), class: "num" },
      { label: "Email", cell: (u) => u.email },
      { label: "Name", cell: (u) => u.name ?? "—" },
      { label: "Active", cell: (u) => badge(u.active, "active", "inactive") },
      { label: "Created by", cell: (u) => (u.created_by === null ? "—" : `admin ${u.created_by}`), class: "num" },
      { label: "Created", cell: (u) => time(u.created_at) },
      { label: "Actions", class: "row-actions", cell: (u) => [
        button("Edit", () => edit(u), { class: "small", "aria-label": `Edit ${u.email}` }),
        button("Delete", () => remove(u), { class: "small", "aria-label": `Delete ${u.email}` }),
      ] },
    ],
  });

  function create() {
    dialog("New user", (close) => userForm(null, close, async (body) => {
      const { user } = await api.call("POST", "/users", { body });
      ctx.notify(`User ${user.email} created.`);
      table.reload().catch(() => {});
      return user;
    }));
  }

  function edit(user) {
    dialog(`Edit ${user.email}`, (close) => userForm(user, close, async (body) => {
      const saved = (await api.call("PUT", `/users/${user.id}`, { body })).user;
      table.replace(saved);
      ctx.notify(`User ${saved.email} saved.`);
      return saved;
    }));
  }

  function remove(user) {
    dialog(`Delete ${user.email}?`, (close) => form({}, [
      h("p", {}, `The user ${user.email}${user.name ? ` (${user.name})` : ""} is deleted for good. `
        + "This cannot be undone."),
      actions(h("button", { type: "submit", class: "danger" }, "Delete the user"),
        button("Cancel", close, { autofocus: true })),
    ], async () => {
      await api.call("DELETE", `/users/${user.id}`);
      close();
      table.remove(user);
      ctx.notify(`User ${user.email} deleted.`);
    }));
  }

  table.reload().catch(() => {}); // a failure is shown in the table
  return h("div", {},
    h("h1", {}, "Users"),
    h("div", { class: "toolbar" }, search, button("New user", create, { class: "primary" })),
    table.element);
}
