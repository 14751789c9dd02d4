// The account view: change the password (POST /api/change-password), then log in again
// with the new one (a password change ends every session issued before it).
import { describe, post } from "./api.js";
import { $, clearFieldErrors, fieldError, showValidationErrors } from "./dom.js";

export class AccountView {
  constructor(user) {
    this.user = user;
    this.form = $("#password-form");
    this.status = $("#password-status");
  }

  init() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.change();
    });
  }

  async change() {
    clearFieldErrors(this.form);
    this.status.textContent = "";
    const f = this.form.elements;
    const current = f.namedItem("currentPassword").value;
    const next = f.namedItem("newPassword").value;
    if (next !== f.namedItem("repeat").value) {
      fieldError(this.form, "repeat", "the two new passwords differ");
      return;
    }
    if (!current) {
      fieldError(this.form, "currentPassword", "enter your current password");
      return;
    }
    const reply = await post("/api/change-password", { currentPassword: current, newPassword: next });
    if (reply.status === 204) {
      const again = await fetch("/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify({ username: this.user, password: next }),
      });
      if (again.status !== 204) {
        location.assign("/login");
        return;
      }
      this.form.reset();
      this.status.textContent = "Password changed.";
    } else if (reply.status === 403) {
      fieldError(this.form, "currentPassword", "this is not your current password");
    } else if (reply.status === 422) {
      for (const message of showValidationErrors(this.form, reply.data)) {
        fieldError(this.form, "newPassword", message);
      }
    } else {
      this.status.textContent = `Not changed: ${describe(reply)}`;
    }
  }
}
