// The configuration view: the original OYE keys, GET and POST /api/config.
import { describe, get, post } from "./api.js";
import { $, clearFieldErrors, showValidationErrors } from "./dom.js";

export class ConfigView {
  constructor() {
    this.form = $("#config-form");
    this.status = $("#config-status");
    this.error = $("#config-error");
  }

  init() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.load();
  }

  fill(config) {
    const f = this.form.elements;
    f.namedItem("targetCsmsUrl").value = config.targetCsmsUrl ?? "";
    f.namedItem("csmsForwardingEnabled").checked = Boolean(config.csmsForwardingEnabled);
    f.namedItem("autoChargeEnabled").checked = Boolean(config.autoChargeEnabled);
    f.namedItem("defaultIdTag").value = config.defaultIdTag ?? "";
    this.form.dataset.loaded = "true";
  }

  async load() {
    const reply = await get("/api/config");
    if (reply.ok) this.fill(reply.data);
    else this.showError(`Cannot read the configuration: ${describe(reply)}`);
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  async save() {
    clearFieldErrors(this.form);
    this.showError("");
    this.status.textContent = "Saving…";
    const f = this.form.elements;
    const url = f.namedItem("targetCsmsUrl").value.trim();
    const body = {
      targetCsmsUrl: url === "" ? null : url,
      csmsForwardingEnabled: f.namedItem("csmsForwardingEnabled").checked,
      autoChargeEnabled: f.namedItem("autoChargeEnabled").checked,
      defaultIdTag: f.namedItem("defaultIdTag").value,
    };
    const reply = await post("/api/config", body);
    if (reply.ok) {
      this.fill(reply.data);
      this.status.textContent = "Saved.";
      return;
    }
    this.status.textContent = "";
    if (reply.status === 422) {
      const rest = showValidationErrors(this.form, reply.data);
      this.showError(rest.length ? rest.join("; ") : "Not saved: check the marked fields.");
    } else {
      this.showError(`Not saved: ${describe(reply)}`);
    }
  }
}
