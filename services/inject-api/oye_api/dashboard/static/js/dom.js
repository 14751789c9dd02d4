// Small DOM helpers: element building, times, and field errors from the API's 422s.

/** h("div", {class: "x", dataset: {cp: "A"}}, child, "text") -> an element. */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children, skipping null/undefined/false (replaceChildren would
 * write them as text). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** "12:03:04.123" in local time, from Unix seconds. */
export function clock(ts) {
  if (typeof ts !== "number") return "";
  const d = new Date(ts * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A date and time a person reads, from an RFC 3339 string. */
export function when(rfc3339) {
  if (!rfc3339) return "–";
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return d.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

/** "3 min ago", from an RFC 3339 string. */
export function ago(rfc3339, now = Date.now()) {
  const d = new Date(rfc3339).getTime();
  if (!rfc3339 || Number.isNaN(d)) return "";
  const s = Math.max(0, Math.round((now - d) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** Clear the field errors of a form (the .field-error[data-for] elements). */
export function clearFieldErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Show a message next to a field; false if the form has no such field. */
export function fieldError(form, name, message) {
  const slot = form.querySelector(`.field-error[data-for="${CSS.escape(name)}"]`);
  if (!slot) return false;
  slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
  slot.hidden = false;
  const input = form.elements.namedItem(name);
  if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
  return true;
}

/**
 * Put FastAPI's 422 details ({detail: [{loc: ["body", "field"], msg}]}) next to the fields
 * they name; returns the messages that name no field of the form.
 */
export function showValidationErrors(form, body) {
  const rest = [];
  const details = Array.isArray(body?.detail) ? body.detail : [];
  for (const item of details) {
    const loc = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body") : [];
    const message = String(item.msg || "invalid").replace(/^Value error, /, "");
    if (!(loc.length && fieldError(form, String(loc[0]), message))) rest.push(message);
  }
  if (!details.length && body?.detail) rest.push(String(body.detail));
  return rest;
}
