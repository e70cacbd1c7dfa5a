// Shared by every view: the JSON API client (timeouts, one error shape, the optional token), the error
// banner with its Retry button, and small DOM/number helpers. User-controlled text only ever goes
// through textContent.

const TOKEN_KEY = "mlscope-token";
export const TIMEOUT_MS = 15000;

export class ApiError extends Error {
  constructor(message, {status = 0, field = null, code = null} = {}) {
    super(message);
    this.status = status;
    this.field = field;
    this.code = code;
  }

  get unavailable() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export function el(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
  }
  if (text !== undefined && text !== null && text !== "") node.textContent = String(text);
  return node;
}

export function fmt(value, digits = 4) {
  if (value === undefined || value === null || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
  return Number(value).toFixed(digits);
}

export function formatTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function formatDuration(start, end) {
  if (!start || !end || end < start) return "—";
  const seconds = (end - start) / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function path(...parts) {
  return parts.map((part) => encodeURIComponent(part)).join("/");
}

export async function api(url, {method = "GET", body, timeout = TIMEOUT_MS} = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  const headers = {Accept: "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, {method, headers, signal: controller.signal,
                                 body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (error) {
    throw new ApiError(error.name === "AbortError"
      ? `The mlscope server did not answer within ${timeout / 1000} s.`
      : "Cannot reach the mlscope server.");
  } finally {
    clearTimeout(timer);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const problem = (payload && payload.error) || {};
    throw new ApiError(problem.message || `${response.status} ${response.statusText}`,
                       {status: response.status, field: problem.field, code: problem.code});
  }
  return payload;
}

// A mutating call: on 401 ask once for the dashboard token (MLSCOPE_TOKEN), keep it for the tab, retry.
export async function mutate(url, body, method = "POST") {
  try {
    return await api(url, {method, body, timeout: 120000});
  } catch (error) {
    if (error.status !== 401) throw error;
    const token = window.prompt("This action needs the dashboard token (MLSCOPE_TOKEN):");
    if (!token) throw error;
    sessionStorage.setItem(TOKEN_KEY, token);
    return api(url, {method, body, timeout: 120000});
  }
}

export const banner = {
  root: () => document.querySelector("[data-banner]"),
  show(message, retry = null) {
    const root = this.root();
    root.querySelector("[data-banner-text]").textContent = message;
    const button = root.querySelector("[data-banner-retry]");
    button.hidden = !retry;
    button.onclick = retry ? () => { this.clear(); retry(); } : null;
    root.hidden = false;
  },
  clear() {
    const root = this.root();
    if (root) root.hidden = true;
  },
};

// An error message as a sentence, so a banner can add one after it.
export function sentence(text) {
  return /[.!?]$/.test(text.trim()) ? text : `${text.trim()}.`;
}

// Run `task`; if it fails, say why in the banner, with a Retry button that runs it again.
export async function guarded(task) {
  try {
    const result = await task();
    banner.clear();
    return result;
  } catch (error) {
    const message = error instanceof ApiError && error.unavailable
      ? `${sentence(error.message)} The tracking store may be down or slow; nothing was changed.`
      : error.message;
    banner.show(message, () => guarded(task));
    return undefined;
  }
}

// Plotly is loaded by a classic deferred script before the view's module runs.
export function plot(node, traces, layout = {}, config = {}) {
  const base = {margin: {l: 50, r: 20, t: 30, b: 40}, font: {family: "system-ui, sans-serif", size: 12},
                paper_bgcolor: "white", plot_bgcolor: "white"};
  return window.Plotly.react(node, traces, {...base, ...layout},
                             {displaylogo: false, responsive: true, ...config});
}
