// Requests to the proxy's own API, as the logged-in user (the session cookie).

/** The header that marks the dashboard's requests (required with the cookie on POST). */
const DASHBOARD_HEADER = { "X-OYE-Dashboard": "1" };

export class NotLoggedIn extends Error {}

/**
 * fetch() with JSON in and out: {status, ok, data, text, ms, headers}. A 401 means the
 * session ended: the page goes to the login page.
 */
export async function api(method, path, body) {
  const headers = { ...DASHBOARD_HEADER };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const started = performance.now();
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status === 401) {
    location.assign("/login");
    throw new NotLoggedIn("not logged in");
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  return { status: response.status, ok: response.ok, data, text, ms, headers: response.headers };
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

/** A path segment for a charge point id (which may hold "/", " ", "%", ...). */
export const segment = (chargePointId) => encodeURIComponent(chargePointId);

/** A short sentence for an error reply. */
export function describe(reply) {
  const detail = reply.data?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
  return reply.text || `HTTP ${reply.status}`;
}
