// Traffic entries from the live feed and from the log in one shape, and each CALL paired
// with its answer. Pure: no DOM.

/**
 * One frame or event: {id, cp, kind, direction, type, messageId, action, ts, time, raw,
 * truncated, error}. `ts` is Unix seconds (microseconds kept as far as a double can).
 */
export function fromLive(m) {
  return {
    id: m.frameId,
    cp: m.cp,
    kind: m.type === "event" ? "event" : "frame",
    direction: m.direction ?? null,
    type: m.type === "event" ? null : m.messageType ?? null,
    messageId: m.messageId ?? null,
    action: m.type === "event" ? m.kind : m.action ?? null,
    ts: m.ts ?? null,
    time: m.time ?? null,
    raw: m.raw ?? "",
    truncated: Boolean(m.truncated),
    error: m.error ?? null,
  };
}

/** A GET /api/logs entry in the same shape. */
export function fromLog(e) {
  return {
    id: e.frameId,
    cp: e.charge_point_id,
    kind: e.kind === "event" ? "event" : "frame",
    direction: e.direction ?? null,
    type: e.messageType ?? null,
    messageId: e.messageId ?? null,
    action: e.action ?? null,
    ts: e.timestamp ?? null,
    time: e.time ?? null,
    raw: e.encoding === "utf-8" || !e.encoding ? e.raw : `(${e.encoding}) ${e.raw}`,
    truncated: Boolean(e.truncated),
    error: e.error ?? null,
  };
}

const CHARGER_CALLS = new Set(["UPSTREAM", "OFFLINE_REPLAY"]);
const ANSWERS_TO_CHARGER = new Set(["DOWNSTREAM", "PROXY_RESPONSE", "OFFLINE_REPLAY"]);
const REPLIES = new Set(["CALLRESULT", "CALLERROR", "CALLRESULTERROR"]);

export const isCall = (e) => e.kind === "frame" && e.type === "CALL";
export const isReply = (e) => e.kind === "frame" && REPLIES.has(e.type);

/**
 * Who made the call an entry belongs to: "charger" or "csms" (the CSMS, or the owner
 * injecting through the proxy). Message ids are unique per caller only, so the pair key
 * holds the caller too.
 */
export function callerOf(e) {
  if (isCall(e)) return CHARGER_CALLS.has(e.direction) ? "charger" : "csms";
  if (isReply(e)) return ANSWERS_TO_CHARGER.has(e.direction) ? "charger" : "csms";
  return null;
}

export function pairKey(e) {
  const caller = callerOf(e);
  if (caller === null || e.messageId === null || e.messageId === undefined) return null;
  return `${e.cp}\u0000${caller}\u0000${e.messageId}`;
}

/** Milliseconds from a call to its answer (null when a time is missing). */
export function latencyMs(call, answer) {
  if (typeof call.ts !== "number" || typeof answer.ts !== "number") return null;
  return Math.max(0, (answer.ts - call.ts) * 1000);
}

/** Whether an entry passes the traffic view's filters (null: any). */
export function matches(e, filter) {
  if (filter.chargePointId && e.cp !== filter.chargePointId) return false;
  if (filter.direction && e.direction !== filter.direction) return false;
  if (filter.action && e.action !== filter.action) return false;
  return true;
}

/**
 * The rows of the traffic view: each row is a CALL with its answer once known, or a frame
 * or event of its own. add() returns what the view must do:
 *   {row, created: true}            a new row
 *   {row, answered: true}           an existing call row got its answer
 *   {row, created: true, absorbed}  a new call row that took over an answer row shown
 *                                   alone before (the view removes `absorbed`)
 *   null                            seen before (same id): nothing to do
 */
export class Pairing {
  constructor() {
    this.seen = new Set();
    this.calls = new Map(); // pair key -> row of the call
    this.orphans = new Map(); // pair key -> row of an answer shown alone
  }

  clear() {
    this.seen.clear();
    this.calls.clear();
    this.orphans.clear();
  }

  add(e) {
    if (e.id) {
      if (this.seen.has(e.id)) return null;
      this.seen.add(e.id);
    }
    const key = pairKey(e);
    if (key !== null && isCall(e)) {
      const row = { head: e, answer: null };
      this.calls.set(key, row);
      const orphan = this.orphans.get(key);
      if (orphan && orphan.head.ts >= e.ts) {
        this.orphans.delete(key);
        row.answer = orphan.head;
        return { row, created: true, absorbed: orphan };
      }
      return { row, created: true };
    }
    if (key !== null && isReply(e)) {
      const call = this.calls.get(key);
      if (call && !call.answer && (call.head.ts ?? 0) <= (e.ts ?? Infinity)) {
        call.answer = e;
        return { row: call, answered: true };
      }
      const row = { head: e, answer: null };
      this.orphans.set(key, row);
      return { row, created: true };
    }
    return { row: { head: e, answer: null }, created: true };
  }

  /** Forget a row the view dropped. */
  forget(row) {
    const key = pairKey(row.head);
    if (key === null) return;
    if (this.calls.get(key) === row) this.calls.delete(key);
    if (this.orphans.get(key) === row) this.orphans.delete(key);
  }
}
