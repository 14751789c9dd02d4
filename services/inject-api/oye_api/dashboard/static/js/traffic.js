// The traffic view: frames as they pass (live feed), older ones from the log as you
// scroll, filters, pause and resume, each CALL with its answer and the time between.
import { get } from "./api.js";
import { $, clock, h, pretty } from "./dom.js";
import { fillChargerSelect } from "./live.js";
import { Pairing, fromLive, fromLog, latencyMs, matches } from "./pairing.js";

const PAGE = 100;
const MAX_ROWS = 1500;
const MAX_PAUSED = 5000;

export class TrafficView {
  constructor(feed, store) {
    this.feed = feed;
    this.store = store;
    this.pairing = new Pairing();
    this.rows = new Map(); // row -> <li>
    this.list = $("#frames");
    this.older = $("#older");
    this.info = $("#traffic-info");
    this.form = $("#traffic-filters");
    this.pauseButton = $("#pause");
    this.filter = { chargePointId: null, direction: null, action: null };
    this.paused = false;
    this.pending = [];
    this.pendingOverflow = false;
    this.cursor = null;
    this.until = null;
    this.exhausted = false;
    this.loading = false;
    this.generation = 0;
  }

  init(actionNames) {
    $("#action-names").replaceChildren(...actionNames.map((name) => h("option", { value: name })));
    fillChargerSelect($("#f-cp"), this.store, { any: "all" });
    this.store.addEventListener("change", () =>
      fillChargerSelect($("#f-cp"), this.store, { any: "all" }),
    );
    let typing = null;
    this.form.addEventListener("change", () => this.applyFilters());
    $("#f-action").addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.applyFilters(), 400);
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.applyFilters();
    });
    this.pauseButton.addEventListener("click", () => this.setPaused(!this.paused));
    this.list.addEventListener("click", (event) => this.toggle(event));
    this.feed.addEventListener("frame", (event) => this.live(event.detail));
    this.feed.addEventListener("event", (event) => this.live(event.detail));
    this.feed.addEventListener("dropped", (event) => this.dropped(event.detail.count));
    this.feed.addEventListener("reconnected", () => this.reload());
    new IntersectionObserver((seen) => {
      if (seen.some((entry) => entry.isIntersecting)) this.loadOlder();
    }).observe(this.older);
    this.reload();
  }

  /** Show one charger's traffic (from a charger card). */
  showCharger(chargePointId) {
    fillChargerSelect($("#f-cp"), this.store, { any: "all" });
    $("#f-cp").value = chargePointId;
    this.applyFilters();
  }

  applyFilters() {
    const value = (name) => this.form.elements.namedItem(name).value.trim() || null;
    const next = {
      chargePointId: value("chargePointId"),
      direction: value("direction"),
      action: value("action"),
    };
    if (JSON.stringify(next) === JSON.stringify(this.filter)) return;
    this.filter = next;
    this.feed.setFilter(next);
    this.reload();
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    this.pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      const pending = this.pending;
      const overflow = this.pendingOverflow;
      this.pending = [];
      this.pendingOverflow = false;
      if (overflow) this.reload();
      else for (const entry of pending) this.show(entry, true);
    }
    this.updateInfo();
  }

  live(message) {
    const entry = fromLive(message);
    if (!matches(entry, this.filter)) return;
    if (this.paused) {
      if (this.pending.length < MAX_PAUSED) this.pending.push(entry);
      else this.pendingOverflow = true;
      this.updateInfo();
      return;
    }
    this.show(entry, true);
  }

  dropped(count) {
    this.list.prepend(
      h("li", { class: "gap-note" }, `${count} frames skipped here because the page fell behind; the log has them.`),
    );
  }

  updateInfo() {
    const waiting = this.pending.length + (this.pendingOverflow ? "+" : "");
    this.info.textContent = this.paused ? `paused · ${waiting} new frames` : `${this.rows.size} shown`;
  }

  reload() {
    this.generation += 1;
    this.pairing.clear();
    this.rows.clear();
    this.list.replaceChildren();
    this.cursor = null;
    this.until = null;
    this.exhausted = false;
    this.loading = false;
    this.updateInfo();
    this.loadOlder();
  }

  async loadOlder() {
    if (this.loading || this.exhausted) return;
    this.loading = true;
    const generation = this.generation;
    this.older.textContent = "Loading older frames…";
    const params = new URLSearchParams({ limit: String(PAGE) });
    for (const [name, value] of Object.entries(this.filter)) if (value) params.set(name, value);
    if (this.cursor) params.set("cursor", this.cursor);
    else if (this.until) params.set("until", String(this.until));
    try {
      const reply = await get(`/api/logs?${params}`);
      if (generation !== this.generation) return;
      if (!reply.ok) {
        this.older.textContent = `Older frames: ${reply.data?.detail || `HTTP ${reply.status}`}`;
        this.exhausted = true;
        return;
      }
      for (const entry of reply.data.entries) this.show(fromLog(entry), false);
      this.cursor = reply.data.nextCursor;
      this.exhausted = !this.cursor;
      this.older.textContent = this.exhausted ? "No older frames in the log." : "Scroll for older frames";
    } catch (error) {
      if (generation === this.generation) this.older.textContent = `Older frames: ${error.message}`;
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.updateInfo();
        // Still in view (a short page)? Load on.
        if (!this.exhausted && isVisible(this.older)) setTimeout(() => this.loadOlder(), 0);
      }
    }
  }

  show(entry, live) {
    const result = this.pairing.add(entry);
    if (result === null) return;
    if (result.answered) {
      this.render(result.row, this.rows.get(result.row));
      return;
    }
    if (result.absorbed) {
      this.rows.get(result.absorbed)?.remove();
      this.rows.delete(result.absorbed);
    }
    const li = this.render(result.row, null);
    this.rows.set(result.row, li);
    this.insert(li, entry.ts ?? 0, live);
    if (live && this.rows.size > MAX_ROWS) this.trim();
    this.updateInfo();
  }

  insert(li, ts, fromTop) {
    li.dataset.ts = String(ts);
    if (fromTop) {
      let next = this.list.firstElementChild;
      while (next && Number(next.dataset.ts ?? Infinity) > ts) next = next.nextElementSibling;
      this.list.insertBefore(li, next);
    } else {
      let before = this.list.lastElementChild;
      while (before && Number(before.dataset.ts ?? -Infinity) < ts) before = before.previousElementSibling;
      this.list.insertBefore(li, before ? before.nextElementSibling : this.list.firstElementChild);
    }
  }

  trim() {
    while (this.rows.size > MAX_ROWS) {
      const last = this.list.lastElementChild;
      if (!last) break;
      for (const [row, li] of this.rows) {
        if (li === last) {
          this.rows.delete(row);
          this.pairing.forget(row);
          break;
        }
      }
      last.remove();
    }
    const oldest = this.list.lastElementChild?.dataset.ts;
    this.until = oldest ? Number(oldest) : null;
    this.cursor = null;
    this.exhausted = false;
  }

  render(row, li) {
    const { head, answer } = row;
    const element = li ?? h("li", { class: "frame" });
    Object.assign(element.dataset, {
      id: head.id ?? "",
      kind: head.kind,
      cp: head.cp,
      direction: head.direction ?? "",
      type: head.type ?? "",
      action: head.action ?? "",
      messageId: head.messageId ?? "",
      paired: answer ? "true" : "false",
    });
    const summary = h(
      "button",
      { type: "button", "aria-expanded": "false" },
      h("span", { class: "time", title: head.time ?? "" }, clock(head.ts)),
      h("span", { class: "cp", title: head.cp }, head.cp),
      h("span", { class: "dir", dataset: { direction: head.direction ?? "" } }, head.direction ?? "event"),
      h("span", { class: "type" }, head.type ?? "event"),
      h("span", { class: "action" }, head.action ?? head.error ?? ""),
      answerBadge(head, answer),
    );
    const body = element.querySelector(".frame-body");
    const open = body && !body.hidden;
    element.replaceChildren(summary);
    if (open) this.expand(element, row);
    return element;
  }

  toggle(event) {
    const button = event.target.closest(".frame > button");
    if (!button) return;
    const li = button.parentElement;
    const body = li.querySelector(".frame-body");
    if (body) {
      body.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    for (const [row, element] of this.rows) {
      if (element === li) {
        this.expand(li, row);
        break;
      }
    }
  }

  expand(li, row) {
    li.querySelector("button").setAttribute("aria-expanded", "true");
    const part = (entry) =>
      h(
        "div",
        {},
        h(
          "h3",
          {},
          `${entry.type ?? "event"} · ${entry.direction ?? entry.action ?? ""} · ${entry.time ?? ""}` +
            (entry.truncated ? " · cut (the log has it all)" : ""),
        ),
        h("pre", {}, pretty(entry.raw)),
      );
    li.append(h("div", { class: "frame-body" }, part(row.head), row.answer ? part(row.answer) : null));
  }
}

function answerBadge(head, answer) {
  if (answer) {
    const ms = latencyMs(head, answer);
    const took = ms === null ? "" : ` ${formatMs(ms)}`;
    return h(
      "span",
      { class: "answer", dataset: { type: answer.type, latencyMs: ms === null ? "" : ms.toFixed(1) } },
      `↩ ${answer.type}${took}`,
    );
  }
  if (head.type === "CALL") return h("span", { class: "answer muted" }, "no answer yet");
  return h("span", { class: "answer muted" }, head.messageId ? `id ${head.messageId}` : "");
}

function formatMs(ms) {
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function isVisible(el) {
  const box = el.getBoundingClientRect();
  return box.top < innerHeight && box.bottom > 0 && el.offsetParent !== null;
}
