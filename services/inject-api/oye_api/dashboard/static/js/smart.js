// The smart-charging view: the persistent limit (set, clear) and the composite schedule
// plotted from GetCompositeSchedule.
import { describe, get, post, segment } from "./api.js";
import { $, clearFieldErrors, fieldError, fill, h, pretty, showValidationErrors } from "./dom.js";
import { fillChargerSelect } from "./live.js";
import { compositeSchedule, drawSchedule } from "./plot.js";

export class SmartView {
  constructor(store) {
    this.store = store;
    this.cp = $("#smart-cp");
    this.limitForm = $("#limit-form");
    this.scheduleForm = $("#schedule-form");
  }

  init() {
    const refill = () => {
      const before = this.cp.value;
      fillChargerSelect(this.cp, this.store, { onlineFirst: true });
      if (this.cp.value !== before) this.chargerChanged();
      else this.showVersion();
    };
    this.store.addEventListener("change", refill);
    refill();
    this.cp.addEventListener("change", () => this.chargerChanged());
    this.limitForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = this.limitForm.elements.namedItem("maxPower").value.trim();
      this.sendLimit(value === "" ? { maxPower: null } : { maxPower: Number(value) });
    });
    $("#limit-clear").addEventListener("click", () => this.sendLimit({ action: "clear" }));
    this.scheduleForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.showSchedule();
    });
  }

  showCharger(chargePointId) {
    this.cp.value = chargePointId;
    this.chargerChanged();
  }

  version() {
    return this.store.get(this.cp.value)?.ocppVersion ?? null;
  }

  showVersion() {
    const version = this.version();
    $("#smart-version").textContent = version ? `OCPP ${version}` : "";
    $("#schedule-connector-label").textContent = version && version !== "1.6" ? "EVSE" : "Connector";
  }

  chargerChanged() {
    this.showVersion();
    for (const id of ["#limit-result", "#schedule-result", "#schedule-figure"]) $(id).hidden = true;
    this.loadStored();
  }

  async loadStored() {
    const chargePointId = this.cp.value;
    if (!chargePointId) return;
    const reply = await get(`/dashboard/limits/${segment(chargePointId)}`);
    if (chargePointId !== this.cp.value) return;
    const stored = reply.ok ? reply.data.maxPower : null;
    $("#smart-stored").textContent = stored === null || stored === undefined ? "none" : `${stored} A`;
    $("#smart-stored").dataset.value = stored ?? "";
  }

  async sendLimit(body) {
    const chargePointId = this.cp.value;
    clearFieldErrors(this.limitForm);
    if (!chargePointId) return;
    const reply = await post(`/api/chargers/${segment(chargePointId)}/smart-charging`, body);
    const result = $("#limit-result");
    let title;
    let content = null;
    if (reply.ok) {
      const status = reply.data?.status ?? "answered";
      title = body.action === "clear" ? `Cleared: the charger says ${status}` : `Limit set: the charger says ${status}`;
      content = h("pre", {}, pretty(reply.text));
    } else if (reply.status === 422) {
      for (const message of showValidationErrors(this.limitForm, reply.data)) {
        fieldError(this.limitForm, "maxPower", message);
      }
      title = "Not sent: check the limit";
    } else {
      title = `${reply.status}: ${describe(reply)}`;
    }
    fill(result, h("div", { class: "status" }, title), content);
    result.dataset.ok = String(reply.ok);
    result.hidden = false;
    this.loadStored();
  }

  async showSchedule() {
    const chargePointId = this.cp.value;
    if (!chargePointId) return;
    const form = this.scheduleForm.elements;
    const duration = Number(form.namedItem("duration").value);
    const unit = form.namedItem("unit").value;
    const connector = Math.max(0, Number(form.namedItem("connector").value) || 0);
    const payload =
      (this.version() ?? "1.6") === "1.6"
        ? { connectorId: connector, duration, chargingRateUnit: unit }
        : { evseId: connector, duration, chargingRateUnit: unit };
    const reply = await post(`/api/inject/${segment(chargePointId)}`, { action: "GetCompositeSchedule", payload });
    const result = $("#schedule-result");
    const figure = $("#schedule-figure");
    const schedule = reply.ok ? compositeSchedule(reply.data, duration) : null;
    if (schedule) {
      drawSchedule($("#schedule-plot"), schedule);
      const from = schedule.start === null ? "now" : new Date(schedule.start).toLocaleString();
      $("#schedule-caption").textContent = `${chargePointId}: limit in ${schedule.unit} over ${duration / 3600} h from ${from}`;
      figure.hidden = false;
      fill(result, periodTable(schedule));
      result.dataset.ok = "true";
    } else {
      figure.hidden = true;
      const why = reply.ok
        ? `The charger answered ${reply.data?.status ?? "without a schedule"}`
        : `${reply.status}: ${describe(reply)}`;
      fill(result, h("div", { class: "status" }, why), reply.ok ? h("pre", {}, pretty(reply.text)) : null);
      result.dataset.ok = "false";
    }
    result.hidden = false;
  }
}

function periodTable(schedule) {
  const rows = schedule.periods.map((p) =>
    h("tr", {}, h("td", {}, `+${formatOffset(p.start)}`), h("td", {}, p.limit === null ? "–" : `${p.limit} ${schedule.unit}`), h("td", {}, p.phases ?? "")),
  );
  return h(
    "table",
    { class: "periods" },
    h("thead", {}, h("tr", {}, h("th", {}, "From"), h("th", {}, "Limit"), h("th", {}, "Phases"))),
    h("tbody", {}, rows),
  );
}

function formatOffset(seconds) {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return `${hours}:${String(minutes).padStart(2, "0")}`;
}
