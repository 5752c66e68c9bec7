// account.js — the signed-in admin's own account: name, email (a new one
// is unconfirmed until its link is opened), password, and deleting the
// account. Changing the email or the password, and deleting, need the
// current password (API.md, PUT and DELETE /auth/me).
import * as api from "./api.js";
import { h, clear, field, form, button, dialog, time, badge } from "./dom.js";

function section(title, ...children) {
  return h("section", { class: "panel", "aria-label": title }, h("h2", {}, title), children);
}

function submit(label, kind = "primary") {
  return h("div", { class: "actions" }, h("button", { type: "submit", class: kind }, label));
}

// The current password as the API wants it: left out when empty, so the
// answer says it is required rather than wrong.
function given(el) {
  return el.elements.current_password.value || undefined;
}

function currentPassword() {
  return field({ label: "Current password", name: "current_password", type: "password",
                 autocomplete: "current-password", required: true });
}

// PUT /auth/me with `body`: the session's admin is updated, and so is the page.
async function update(body) {
  const { admin } = await api.call("PUT", "/auth/me", { body });
  api.setAdmin(admin);
  return admin;
}

function details(admin, ctx) {
  const resend = async (event) => {
    event.currentTarget.disabled = true;
    try {
      await api.anonymous("POST", "/auth/confirm/resend", { email: admin.email });
      ctx.notify(`A new confirmation link is on its way to ${admin.email}.`);
    } catch (e) {
      ctx.notify(e.message);
    } finally {
      event.currentTarget.disabled = false;
    }
  };
  return section("Your details",
    h("dl", { class: "facts" },
      h("dt", {}, "Name"), h("dd", {}, admin.name),
      h("dt", {}, "Email"), h("dd", {}, admin.email, " ",
        badge(admin.confirmed, "confirmed", "not confirmed", "warn")),
      h("dt", {}, "Admin id"), h("dd", {}, String(admin.id)),
      h("dt", {}, "Registered"), h("dd", {}, time(admin.created_at))),
    admin.confirmed ? null : h("div", { class: "info", role: "status" },
      h("p", {}, `${admin.email} is not confirmed yet: open the link we mailed to it. Until then, `
        + "this admin cannot log in again once this session ends."),
      button("Send the link again", resend, { class: "small" })));
}

export function accountScreen(ctx) {
  const top = h("div", {}, h("p", { class: "state" }, "Loading your account…"));
  const forms = h("div", { class: "grid" });
  const root = h("div", {}, h("h1", {}, "My account"), top, forms);

  const show = (admin) => clear(top, details(admin, ctx));

  const nameForm = (admin) => form({ "aria-label": "Change your name" }, [
    field({ label: "Name", name: "name", value: admin.name, autocomplete: "nickname",
            hint: "3 to 32 letters, digits, _ - or ." }),
    submit("Save the name"),
  ], async (el) => {
    show(await update({ name: el.elements.name.value.trim() }));
    ctx.notify("Your name is saved.");
  });

  const emailForm = (admin) => form({ "aria-label": "Change your email" }, [
    field({ label: "New email", name: "email", type: "email", value: admin.email, autocomplete: "email",
            hint: "We mail a link to the new address; it is unconfirmed until you open it." }),
    currentPassword(),
    submit("Change the email"),
  ], async (el) => {
    const admin2 = await update({ email: el.elements.email.value.trim(),
                                  current_password: given(el) });
    el.elements.current_password.value = "";
    show(admin2);
    ctx.notify(`Your email is now ${admin2.email}: open the link we sent there to confirm it.`);
  });

  const passwordForm = () => form({ "aria-label": "Change your password" }, [
    field({ label: "New password", name: "password", type: "password", autocomplete: "new-password",
            hint: "8 to 128 characters, not your email or name. Every other session is logged out." }),
    field({ label: "New password again", name: "again", type: "password", autocomplete: "new-password" }),
    currentPassword(),
    submit("Change the password"),
  ], async (el) => {
    const password = el.elements.password.value;
    if (password !== el.elements.again.value) {
      throw Object.assign(new Error("The two new passwords are not the same."),
        { fields: { again: "is not the same as the new password" } });
    }
    await update({ password, current_password: given(el) });
    el.reset();
    ctx.notify("Your password is changed; your other sessions are logged out.");
  });

  const deleteAccount = () => dialog("Delete your account?", (close) => form({}, [
    h("p", {}, "Your admin account is deleted for good and you are logged out. The users you created stay."),
    currentPassword(),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "danger" }, "Delete my account"),
      button("Cancel", close)),
  ], async (el) => {
    await api.call("DELETE", "/auth/me", { body: { current_password: given(el) } });
    close();
    api.end("Your account has been deleted.");
  }));

  (async () => {
    try {
      const { admin } = await api.call("GET", "/auth/me");
      api.setAdmin(admin);
      show(admin);
      forms.append(
        section("Name", nameForm(admin)),
        section("Email", emailForm(admin)),
        section("Password", passwordForm()),
        section("Delete the account",
          h("p", {}, "Deleting needs your password. It cannot be undone."),
          button("Delete my account…", deleteAccount, { class: "danger" })));
    } catch (e) {
      clear(top, h("div", { class: "state failure", role: "alert" }, h("p", {}, e.message),
        button("Try again", () => ctx.go("account"), { class: "small" })));
    }
  })();
  return root;
}
