// The chargers view: one card per charger, changed in place as the live feed reports.
// The offline replay backlog comes from GET /api/chargers/{id}, asked again when
// something that can change it happens (never on a timer).
import { get, segment } from "./api.js";
import { $, ago, h, when } from "./dom.js";

const BACKLOG_EVENTS = new Set(["connected", "upstream_up", "upstream_down", "replayed", "replay_rejected"]);
const REFETCH_DELAY_MS = 300;

export class ChargersView {
  constructor(store, feed, actions) {
    this.store = store;
    this.feed = feed;
    this.actions = actions; // {traffic(cp), inject(cp), smart(cp)}
    this.list = $("#charger-list");
    this.cards = new Map();
    this.details = new Map(); // cp -> GET /api/chargers/{id} body
    this.open = new Set();
    this.timers = new Map();
  }

  init() {
    this.store.addEventListener("change", (event) => this.changed(event.detail));
    this.feed.addEventListener("event", (event) => {
      const e = event.detail;
      if (BACKLOG_EVENTS.has(e.kind)) this.refetch(e.cp);
    });
    this.feed.addEventListener("frame", (event) => {
      const f = event.detail;
      // The proxy answering while the CSMS is down may have kept the call for replay. The
      // live state says so (the last fetched details may predate the drop).
      if (f.direction === "OFFLINE_REPLAY" || (f.direction === "PROXY_RESPONSE" && this.store.get(f.cp)?.upstream === "down")) {
        this.refetch(f.cp);
      }
    });
    this.list.addEventListener("click", (event) => this.clicked(event));
    this.renderAll();
  }

  changed(detail) {
    if (detail.all) {
      this.renderAll();
      for (const cp of this.store.chargers.keys()) this.refetch(cp);
      return;
    }
    if (detail.removed) {
      this.cards.get(detail.id)?.remove();
      this.cards.delete(detail.id);
      this.details.delete(detail.id);
    } else {
      this.renderOne(detail.id);
      this.refetch(detail.id);
    }
    this.summary();
  }

  renderAll() {
    const keep = new Set(this.store.chargers.keys());
    for (const [cp, card] of this.cards) {
      if (!keep.has(cp)) {
        card.remove();
        this.cards.delete(cp);
      }
    }
    for (const charger of this.store.sorted()) this.renderOne(charger.chargePointId);
    this.summary();
  }

  summary() {
    const all = this.store.sorted();
    const online = all.filter((c) => c.status === "ONLINE").length;
    $("#charger-count").textContent = all.length ? `${online} online · ${all.length} known` : "";
    $("#chargers-empty").hidden = all.length > 0;
  }

  renderOne(cp) {
    const charger = this.store.get(cp);
    if (!charger) return;
    const card = chargerCard(charger, this.details.get(cp), this.open.has(cp));
    const existing = this.cards.get(cp);
    if (existing) {
      existing.replaceWith(card);
    } else {
      // Keep the cards sorted by id.
      const after = [...this.cards.keys()].filter((id) => id < cp).sort().at(-1);
      const before = after === undefined ? this.list.firstElementChild : this.cards.get(after).nextElementSibling;
      this.list.insertBefore(card, before);
    }
    this.cards.set(cp, card);
  }

  refetch(cp) {
    if (!cp || !this.store.get(cp)) return;
    clearTimeout(this.timers.get(cp));
    this.timers.set(
      cp,
      setTimeout(async () => {
        this.timers.delete(cp);
        const reply = await get(`/api/chargers/${segment(cp)}`);
        if (reply.ok) {
          this.details.set(cp, reply.data);
          this.renderOne(cp);
        }
      }, REFETCH_DELAY_MS),
    );
  }

  clicked(event) {
    const button = event.target.closest("button[data-do]");
    if (!button) return;
    const cp = button.closest(".charger").dataset.cp;
    const action = button.dataset.do;
    if (action === "details") {
      if (this.open.has(cp)) this.open.delete(cp);
      else {
        this.open.add(cp);
        this.refetch(cp);
      }
      this.renderOne(cp);
    } else {
      this.actions[action](cp);
    }
  }
}

function fact(label, value, attrs = {}) {
  return [h("dt", {}, label), h("dd", attrs, value)];
}

function chargerCard(c, detail, open) {
  const boot = c.boot ?? {};
  const online = c.status === "ONLINE";
  const connectors = Object.entries(c.connectors ?? {}).sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }));
  const transactions = Object.entries(c.transactions ?? {});
  const backlog = detail?.replayBacklog;
  const facts = [
    ...fact("Vendor / model", [boot.vendor, boot.model].filter(Boolean).join(" · ") || "–", { class: "model" }),
    ...fact("Firmware", boot.firmware ?? "–", { class: "firmware" }),
    ...(online
      ? fact("Connected since", h("span", { title: when(c.connectedSince) }, `${when(c.connectedSince)} (${ago(c.connectedSince)})`), { class: "since" })
      : fact("Last seen", h("span", { title: when(c.lastSeen) }, c.lastSeen ? `${when(c.lastSeen)} (${ago(c.lastSeen)})` : "–"), { class: "seen" })),
    ...fact(
      "Connectors",
      connectors.length
        ? h("span", { class: "chips" }, connectors.map(([id, s]) => h("span", { class: "chip", dataset: { connector: id, status: s.status ?? "" } }, `${id}: ${s.status ?? "?"}`)))
        : "–",
      { class: "connectors" },
    ),
    ...fact(
      "Transactions",
      transactions.length ? `${transactions.length} open: ${transactions.map(([id]) => id).join(", ")}` : "none open",
      { class: "transactions", dataset: { count: String(transactions.length) } },
    ),
    ...fact(
      "Replay backlog",
      backlog === undefined ? "…" : backlog ? `${backlog} waiting since ${when(detail.replayOldest)}` : "none",
      { class: "backlog", dataset: { count: backlog === undefined ? "" : String(backlog) } },
    ),
    ...fact("CSMS link", c.upstream ?? "–", { class: "upstream" }),
  ];
  const extra = open
    ? h(
        "div",
        { class: "details" },
        h(
          "dl",
          { class: "facts" },
          ...fact("Relay", c.relay ?? "–"),
          ...fact("From", c.remoteAddress ?? "–"),
          ...fact("Subprotocol", c.subprotocol ?? "–"),
          ...fact("Session", c.sessionId ?? "–"),
          ...Object.entries(boot)
            .filter(([k]) => !["vendor", "model", "firmware"].includes(k))
            .flatMap(([k, v]) => fact(k, String(v))),
          ...transactions.flatMap(([id, t]) => fact(`Transaction ${id}`, JSON.stringify(t))),
        ),
      )
    : null;
  return h(
    "article",
    { class: "charger", dataset: { cp: c.chargePointId, status: c.status, version: c.ocppVersion ?? "" } },
    h(
      "header",
      {},
      h("h2", {}, c.chargePointId),
      h("span", { class: "badge status", dataset: { status: c.status } }, c.status),
      h("span", { class: "tag version" }, c.ocppVersion ? `OCPP ${c.ocppVersion}` : ""),
    ),
    h("dl", { class: "facts" }, ...facts),
    extra,
    h(
      "footer",
      {},
      h("button", { type: "button", "data-do": "details", "aria-expanded": String(open) }, open ? "Less" : "More"),
      h("button", { type: "button", "data-do": "traffic" }, "Traffic"),
      h("button", { type: "button", "data-do": "inject" }, "Inject"),
      h("button", { type: "button", "data-do": "smart" }, "Limit"),
    ),
  );
}
