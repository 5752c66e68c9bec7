// dom.js — building the page with the DOM API alone. No HTML is ever
// written as a string (the Content-Security-Policy enforces Trusted Types
// in Chromium, and text from the server can never become markup).

let nextId = 0;
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// h("button", {class: "primary", on: {click: fn}}, "Save") -> element.
// attrs: class, text, on (events), and any attribute (true: present,
// false/null/undefined: absent). Children: nodes, strings, arrays, null.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "on") {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (key === "text") {
      el.textContent = value;
    } else if (key === "value" || key === "checked") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// ---- forms ------------------------------------------------------------------

// A labelled input with its hint and its error slot, both tied to it by
// aria-describedby. opts: label, name, type, value, hint, autocomplete,
// required, checked (checkbox), options ([value, label] for a select).
export function field(opts) {
  const id = uid(`f-${opts.name}`);
  const hintId = opts.hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ");
  const common = { id, name: opts.name, "aria-describedby": describedBy, "data-label": opts.label };
  let control;
  if (opts.options) {
    control = h("select", common, opts.options.map(([value, label]) =>
      h("option", { value, selected: value === (opts.value ?? "") }, label)));
  } else {
    control = h("input", {
      ...common, type: opts.type || "text", value: opts.type === "checkbox" ? undefined : (opts.value ?? ""),
      checked: opts.type === "checkbox" ? Boolean(opts.checked) : undefined,
      autocomplete: opts.autocomplete, required: opts.required, inputmode: opts.inputmode,
      placeholder: opts.placeholder, spellcheck: opts.type === "email" ? "false" : undefined,
    });
  }
  const label = h("label", { for: id }, opts.label);
  const hint = opts.hint ? h("p", { class: "hint", id: hintId }, opts.hint) : null;
  const error = h("p", { class: "field-error", id: errorId, "data-error-for": opts.name });
  if (opts.type === "checkbox") {
    return h("div", { class: "field" }, h("div", { class: "check" }, control, label), hint, error);
  }
  return h("div", { class: "field" }, label, control, hint, error);
}

// A form that never submits by itself (novalidate: the API's messages are
// the ones shown; method=post: were script ever to fail, nothing would
// land in a URL). onSubmit(form) runs with the form busy; an ApiError it
// throws is shown next to the fields it names.
export function form(attrs, children, onSubmit) {
  const alert = h("div", { class: "form-error", role: "alert" });
  const el = h("form", { ...attrs, method: "post", novalidate: true }, alert, children);
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (el.getAttribute("aria-busy") === "true") return;
    clearErrors(el);
    el.setAttribute("aria-busy", "true");
    const buttons = [...el.querySelectorAll("button")];
    for (const b of buttons) b.disabled = true;
    try {
      await onSubmit(el);
    } catch (e) {
      showErrors(el, e);
    } finally {
      el.removeAttribute("aria-busy");
      for (const b of buttons) b.disabled = false;
    }
  });
  return el;
}

export function clearErrors(formEl) {
  for (const slot of formEl.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of formEl.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const alert = formEl.querySelector(".form-error");
  if (alert) alert.textContent = "";
}

// Shows an error: each entry of `fields` next to its field (label first,
// then the API's words: "Email is already in use"), the message on top,
// and focus on the first field named. A field this form does not have is
// listed in the message.
export function showErrors(formEl, err) {
  const alert = formEl.querySelector(".form-error");
  const others = [];
  let first = null;
  for (const [name, message] of Object.entries(err.fields || {})) {
    const slot = formEl.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    const input = formEl.elements.namedItem(name);
    if (slot && input) {
      slot.textContent = `${input.dataset.label} ${message}`;
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    } else {
      others.push(`${name} ${message}`);
    }
  }
  let text = err.message || String(err);
  if (others.length) text += `: ${others.join("; ")}`;
  if (err.retryAfter) text += ` (try again in ${wait(err.retryAfter)})`;
  if (alert) alert.textContent = text;
  if (first) first.focus();
}

function wait(seconds) {
  return seconds < 90 ? `${seconds} s` : `${Math.ceil(seconds / 60)} min`;
}

export function button(label, onClick, attrs = {}) {
  return h("button", { type: "button", ...attrs, on: { click: onClick } }, label);
}

// ---- dialogs ----------------------------------------------------------------

// A modal <dialog> (focus is kept inside, Escape closes it), removed from
// the page once closed; focus goes back to what was focused before.
export function dialog(title, build) {
  const titleId = uid("dialog-title");
  const back = document.activeElement;
  const el = h("dialog", { "aria-labelledby": titleId });
  const close = () => el.close();
  el.append(h("h2", { id: titleId }, title), build(close));
  el.addEventListener("close", () => {
    el.remove();
    if (back && back.isConnected) back.focus();
  });
  document.body.append(el);
  el.showModal();
  return el;
}

// ---- values -----------------------------------------------------------------

export function time(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

export function badge(yes, yesText, noText, noClass = "no") {
  return h("span", { class: `badge ${yes ? "yes" : noClass}` }, yes ? yesText : noText);
}

// ---- a list that pages with a cursor ---------------------------------------

// A table fed by load(cursor) -> {items, next}, with loading, empty and
// failure states and a "More" button while there is a next page.
// columns: [{label, cell(item) -> node or text, class}]. Returns
// {element, reload(), replace(item), remove(item)} (items matched by id).
export function pagedTable({ caption, columns, load, empty, more = "More" }) {
  const body = h("tbody");
  const table = h("table", {}, h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))), body);
  const wrap = h("div", { class: "table-wrap" }, table);
  const status = h("div", { "aria-live": "polite" });
  const moreButton = button(more, () => fetchPage(), { class: "more-button" });
  const moreRow = h("div", { class: "more" }, moreButton);
  const element = h("section", { "aria-label": caption }, status, wrap, moreRow);
  let cursor = null;
  let generation = 0;

  function row(item) {
    return h("tr", { "data-id": item.id }, columns.map((c) => h("td", { class: c.class }, c.cell(item))));
  }

  function show({ loading, failure, count }) {
    element.setAttribute("aria-busy", loading ? "true" : "false");
    wrap.hidden = count === 0;
    moreRow.hidden = loading || failure || !cursor;
    if (loading && count === 0) {
      clear(status, h("p", { class: "state" }, `Loading ${caption.toLowerCase()}…`));
    } else if (failure) {
      clear(status, h("div", { class: "state failure", role: "alert" }, h("p", {}, failure.message),
        button("Try again", () => fetchPage(), { class: "small" })));
    } else if (count === 0 && !loading) {
      clear(status, h("p", { class: "state empty" }, empty()));
    } else {
      clear(status);
    }
  }

  async function fetchPage(reset) {
    const mine = reset ? ++generation : generation;
    if (reset) {
      cursor = null;
      body.replaceChildren();
    }
    moreButton.disabled = true;
    show({ loading: true, count: body.rows.length });
    try {
      const page = await load(cursor);
      if (mine !== generation) return;
      cursor = page.next || null;
      for (const item of page.items) body.append(row(item));
      show({ count: body.rows.length });
    } catch (e) {
      if (mine !== generation) return;
      if (reset && e.fields) {
        // a refused filter (422 with fields): the caller shows it by field
        show({ failure: e, count: 0 });
        clear(status, h("p", { class: "state" }, "Nothing to show: correct the fields above."));
        throw e;
      }
      show({ failure: e, count: body.rows.length });
    } finally {
      moreButton.disabled = false;
    }
  }

  return {
    element,
    reload: () => fetchPage(true),
    replace(item) {
      const old = body.querySelector(`tr[data-id="${CSS.escape(String(item.id))}"]`);
      if (old) old.replaceWith(row(item));
    },
    remove(item) {
      body.querySelector(`tr[data-id="${CSS.escape(String(item.id))}"]`)?.remove();
      show({ count: body.rows.length });
    },
  };
}
