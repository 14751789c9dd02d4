// The inject view: a charger, an action its OCPP version takes, a payload from a
// template, send, and the charger's answer (or the problems, at their fields).
import { describe, post, segment } from "./api.js";
import { $, fill, h, pretty } from "./dom.js";
import { JsonEditor, pathPart } from "./editor.js";
import { fillChargerSelect } from "./live.js";

const SKELETON = "skeleton";
const DEFAULT_VERSION = "1.6";

export class InjectView {
  constructor(store, catalog) {
    this.store = store;
    this.catalog = catalog;
    this.form = $("#inject-form");
    this.cp = $("#inject-cp");
    this.action = $("#inject-action");
    this.template = $("#inject-template");
    this.editor = new JsonEditor($("#inject-editor"));
    this.result = $("#inject-result");
    this.status = $("#inject-status");
    this.version = null;
  }

  init() {
    const refill = () => {
      fillChargerSelect(this.cp, this.store, { onlineFirst: true });
      this.chargerChanged(false);
    };
    this.store.addEventListener("change", refill);
    refill();
    this.cp.addEventListener("change", () => this.chargerChanged(true));
    this.action.addEventListener("change", () => {
      this.fillTemplates();
      this.useTemplate(SKELETON);
    });
    this.template.addEventListener("change", () => this.useTemplate(this.template.value));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
  }

  /** Open the view for a charger (from a charger card). */
  showCharger(chargePointId) {
    this.cp.value = chargePointId;
    this.chargerChanged(true);
  }

  versionOf(chargePointId) {
    const version = this.store.get(chargePointId)?.ocppVersion;
    return version && this.catalog.versions[version] ? version : null;
  }

  chargerChanged(userChoice) {
    const version = this.versionOf(this.cp.value);
    $("#inject-version").textContent = version
      ? `OCPP ${version}`
      : this.cp.value
        ? "OCPP version unknown: 1.6 actions shown"
        : "";
    const effective = version ?? DEFAULT_VERSION;
    if (effective === this.version && !userChoice) return;
    const keep = this.action.value;
    this.version = effective;
    const actions = this.catalog.versions[effective].actions;
    this.action.replaceChildren(...actions.map((name) => new Option(name, name)));
    this.action.value = actions.includes(keep) ? keep : actions.includes("GetConfiguration") ? "GetConfiguration" : actions[0];
    this.fillTemplates();
    this.useTemplate(this.firstScenario() ?? SKELETON);
  }

  scenarios() {
    return this.catalog.scenarios.filter((s) => s.versions.includes(this.version));
  }

  firstScenario() {
    return this.scenarios().find((s) => s.action === this.action.value)?.id ?? null;
  }

  fillTemplates() {
    const options = [new Option(`${this.action.value}: required fields`, SKELETON)];
    const group = h("optgroup", { label: "Smart Charging Guide and more" });
    for (const scenario of this.scenarios()) group.append(new Option(scenario.title, scenario.id));
    this.template.replaceChildren(...options, group);
  }

  useTemplate(id) {
    const scenario = this.catalog.scenarios.find((s) => s.id === id);
    if (scenario) {
      if (this.action.value !== scenario.action) {
        this.action.value = scenario.action;
        this.fillTemplates();
      }
      this.template.value = scenario.id;
      this.editor.set(scenario.payload);
      $("#inject-collect").checked = Boolean(scenario.options.collect);
      $("#inject-wait").checked = scenario.options.wait !== false;
    } else {
      this.template.value = SKELETON;
      this.editor.set(this.catalog.versions[this.version].templates[this.action.value] ?? {});
    }
  }

  async send() {
    const chargePointId = this.cp.value;
    this.result.hidden = true;
    if (!chargePointId) {
      this.status.textContent = "Choose a charger first.";
      return;
    }
    const payload = this.editor.parse();
    if (payload === null) {
      this.status.textContent = "The payload is not JSON.";
      return;
    }
    const body = {
      action: this.action.value,
      payload,
      wait: $("#inject-wait").checked,
      validate: $("#inject-validate").checked,
      collect: $("#inject-collect").checked,
    };
    const timeout = Number($("#inject-timeout").value);
    if (timeout > 0) body.timeout = timeout;
    const button = $("#inject-send");
    button.disabled = true;
    this.status.textContent = `Sending ${body.action} to ${chargePointId}…`;
    try {
      const reply = await post(`/api/inject/${segment(chargePointId)}`, body);
      this.status.textContent = "";
      this.show(chargePointId, body.action, reply);
    } catch (error) {
      this.status.textContent = `Not sent: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }

  show(chargePointId, action, reply) {
    const messageId = reply.headers.get("X-OYE-Message-Id");
    const took = `${Math.round(reply.ms)} ms`;
    let title;
    let content = null;
    if (reply.status === 200) {
      title = `${chargePointId} answered ${action} (${took})`;
      content = h("pre", { class: "answer-json" }, pretty(reply.text));
    } else if (reply.status === 202) {
      title = `Sent ${action}; not waiting for the answer (see Traffic)`;
    } else if (reply.status === 422) {
      title = `Not sent: ${reply.data?.detail && typeof reply.data.detail === "string" ? reply.data.detail : "the request is not valid"}`;
      const problems = problemsOf(reply.data);
      this.editor.setProblems(problems);
      content = problems.length
        ? h("ul", { class: "problems" }, problems.map((p) => h("li", {}, h("code", {}, p.path), ` ${p.message}`)))
        : null;
    } else if (reply.status === 502) {
      const d = reply.data ?? {};
      title = `${chargePointId} answered with CALLERROR ${d.errorCode ?? ""}`;
      content = h("pre", {}, JSON.stringify(d, null, 2));
    } else {
      title = `${reply.status}: ${describe(reply)}`;
    }
    fill(this.result, 
      h("div", { class: "status" }, title),
      messageId ? h("div", { class: "muted small" }, `message id ${messageId}`) : null,
      content,
    );
    this.result.dataset.ok = String(reply.ok);
    this.result.dataset.status = String(reply.status);
    this.result.hidden = false;
  }
}

/**
 * The problems of a 422 as [{path, message}] in the payload's terms: the relay's
 * ({problems: [{path, message}]}) as they are; FastAPI's ({detail: [{loc, msg}]}) with
 * loc ["body", "payload", ...] turned into a path.
 */
export function problemsOf(body) {
  if (Array.isArray(body?.problems)) return body.problems;
  if (!Array.isArray(body?.detail)) return [];
  return body.detail.map((d) => {
    const loc = Array.isArray(d.loc) ? d.loc.slice(1) : [];
    const inPayload = loc[0] === "payload";
    const parts = inPayload ? loc.slice(1) : [];
    const where = inPayload ? "" : `${loc.join(".") || "request"}: `;
    return { path: `$${parts.map(pathPart).join("")}`, message: `${where}${d.msg}` };
  });
}
