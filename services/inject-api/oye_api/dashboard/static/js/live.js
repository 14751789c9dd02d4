// The live feed: one WebSocket to /dashboard/live, reconnected with a capped backoff.
// Charger states go to the store; frames and events to whoever listens.

const MIN_WAIT_MS = 500;
const MAX_WAIT_MS = 10_000;

export class LiveFeed extends EventTarget {
  constructor(store, statusEl) {
    super();
    this.store = store;
    this.statusEl = statusEl;
    this.filter = { chargePointId: null, direction: null, action: null };
    this.socket = null;
    this.wait = MIN_WAIT_MS;
    this.connections = 0;
  }

  start() {
    this.connect();
  }

  setFilter(filter) {
    this.filter = { ...filter };
    this.sendFilter();
  }

  sendFilter() {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ type: "filter", ...this.filter }));
    }
  }

  status(state, text) {
    this.statusEl.dataset.state = state;
    this.statusEl.textContent = text;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/dashboard/live`);
    this.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      this.wait = MIN_WAIT_MS;
      this.connections += 1;
      this.status("live", "live");
      this.sendFilter();
      // After a reconnection, what passed meanwhile is only in the log.
      if (this.connections > 1) this.dispatchEvent(new Event("reconnected"));
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", async () => {
      if (this.socket !== socket) return;
      this.status("reconnecting", "reconnecting");
      if (!opened) {
        // Refused at the handshake: perhaps the session ended.
        try {
          const me = await fetch("/dashboard/me", {
            credentials: "same-origin",
            headers: { "X-OYE-Dashboard": "1" },
          });
          if (me.status === 401) {
            location.assign("/login");
            return;
          }
        } catch {
          // the proxy is unreachable: keep trying
        }
      }
      setTimeout(() => this.connect(), this.wait);
      this.wait = Math.min(this.wait * 2, MAX_WAIT_MS);
    });
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.type) {
      case "chargers":
        this.store.replaceAll(message.chargers);
        break;
      case "charger":
        if (message.removed !== undefined) this.store.remove(message.removed);
        else this.store.put(message.charger);
        break;
      case "frame":
      case "event":
      case "dropped":
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
        break;
      default:
        break;
    }
  }
}

/** The chargers as the live feed last described them; "change" events on every update. */
export class ChargerStore extends EventTarget {
  constructor() {
    super();
    this.chargers = new Map();
  }

  replaceAll(list) {
    this.chargers = new Map(list.map((c) => [c.chargePointId, c]));
    this.dispatchEvent(new CustomEvent("change", { detail: { all: true } }));
  }

  put(charger) {
    const before = this.chargers.get(charger.chargePointId);
    this.chargers.set(charger.chargePointId, charger);
    this.dispatchEvent(new CustomEvent("change", { detail: { id: charger.chargePointId, before } }));
  }

  remove(id) {
    this.chargers.delete(id);
    this.dispatchEvent(new CustomEvent("change", { detail: { id, removed: true } }));
  }

  get(id) {
    return this.chargers.get(id);
  }

  sorted() {
    return [...this.chargers.values()].sort((a, b) =>
      a.chargePointId < b.chargePointId ? -1 : a.chargePointId > b.chargePointId ? 1 : 0,
    );
  }
}

/** Keep a <select> of chargers current: "id (1.6, ONLINE)"; keeps the choice. */
export function fillChargerSelect(select, store, { any = null, onlineFirst = false } = {}) {
  const chosen = select.value;
  const chargers = store.sorted();
  if (onlineFirst) chargers.sort((a, b) => (a.status === b.status ? 0 : a.status === "ONLINE" ? -1 : 1));
  select.replaceChildren();
  if (any !== null) select.append(new Option(any, ""));
  for (const c of chargers) {
    const version = c.ocppVersion ? `OCPP ${c.ocppVersion}, ` : "";
    select.append(new Option(`${c.chargePointId} (${version}${c.status})`, c.chargePointId));
  }
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}
