// REST client for the gateway API. The session cookie goes by itself; a 401 asks the
// user to sign in (again) and retries.

import { csrfHeaders, loadSession, signIn } from "./auth.js";
import { apiParams } from "./filters.js";
import { t } from "./i18n.js";

export const PAGE_SIZE = 50;

export class ApiError extends Error {
  /** `problems`: FastAPI's validation list [{loc, msg}] when the server sent one. */
  constructor(status, detail, problems = []) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.problems = problems;
  }
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return new ApiError(response.status, body.detail);
    const problems = Array.isArray(body.detail) ? body.detail : [];
    return new ApiError(response.status, JSON.stringify(body.detail), problems);
  } catch {
    return new ApiError(response.status, response.statusText || "request failed");
  }
}

// Server messages the page knows by their text (the server speaks English only).
const KNOWN_DETAILS = [
  [/until must be later than since/, "errors.range_order"],
  [/invalid cursor/, "errors.cursor"],
  [/database (unavailable|not connected)/, "errors.database"],
  [/needs the operator role/, "errors.needs_operator"],
];

/**
 * A sentence for the user, in their language, for any error a request can end with:
 * the server's English messages are mapped by status and known text; the original
 * stays in the console for whoever debugs it.
 */
export function describeError(error) {
  if (error?.name === "TypeError") return t("errors.network");
  if (!(error instanceof ApiError)) return t("errors.unexpected");
  console.info("server said:", error.status, error.detail);
  for (const [pattern, key] of KNOWN_DETAILS) {
    if (pattern.test(error.detail)) return t(key);
  }
  if (error.status === 400 || error.status === 422) {
    const names = error.problems.map((problem) => problem.loc?.[1]).filter(Boolean);
    return names.length > 0
      ? t("errors.invalid_params", { names: names.join(", ") })
      : t("errors.invalid");
  }
  if (error.status === 401) return t("errors.unauthorized");
  if (error.status === 403) return t("errors.forbidden");
  if (error.status === 404) return t("errors.not_found");
  if (error.status === 409) return t("errors.conflict");
  if (error.status === 503) return t("errors.database");
  if (error.status >= 500) return t("errors.server");
  return t("errors.http", { status: String(error.status) });
}

export async function getJson(path, { signal } = {}) {
  for (;;) {
    const response = await fetch(path, {
      headers: { Accept: "application/json" },
      signal,
    });
    if (response.status === 401) {
      await signIn();
      continue;
    }
    if (!response.ok) throw await apiError(response);
    return response.json();
  }
}

/**
 * POST a JSON body; the JSON answer. Carries the session's CSRF token (a state change
 * made with the cookie needs it); a 401 asks to sign in and retries.
 */
export async function postJson(path, body) {
  for (;;) {
    const response = await fetch(path, {
      method: "POST",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        ...csrfHeaders(),
      },
      body: JSON.stringify(body),
    });
    if (response.status === 401) {
      await signIn();
      continue;
    }
    if (response.status === 403) {
      // Refused although the page offered the control: the roles changed during this
      // session. Ask again who we are, so the controls this user lacks disappear.
      const error = await apiError(response);
      await loadSession().catch(() => {});
      throw error;
    }
    if (!response.ok) throw await apiError(response);
    return response.json();
  }
}

/** One page of executions, newest first: {items, next_cursor}. */
export function listExecutions(filters, cursor, { signal } = {}) {
  const params = apiParams(filters);
  params.set("limit", String(PAGE_SIZE));
  if (cursor) params.set("cursor", cursor);
  return getJson(`/api/executions?${params}`, { signal });
}

/** How many executions pass the filters: {count, exact}. */
export function countExecutions(filters, { signal } = {}) {
  return getJson(`/api/stats/count?${apiParams(filters)}`, { signal });
}

/** Statistics: kind is summary | timeseries | ranking; extra adds interval, by, order… */
export function getStats(kind, filters, extra = {}, { signal } = {}) {
  const params = apiParams(filters);
  for (const [name, value] of Object.entries(extra)) params.set(name, String(value));
  return getJson(`/api/stats/${kind}?${params}`, { signal });
}

export async function listLocations() {
  return (await getJson("/api/stats/locations")).locations ?? [];
}

/**
 * Download the filtered list (format csv | json), streamed: `onProgress(rows)` is called
 * as lines arrive. Resolves to {blob, fileName}. A 401 asks to sign in and retries.
 */
export async function downloadExport(filters, format, { onProgress, signal } = {}) {
  const params = apiParams(filters);
  params.set("format", format);
  let response;
  for (;;) {
    response = await fetch(`/api/export?${params}`, { signal });
    if (response.status !== 401) break;
    await signIn();
  }
  if (!response.ok) throw await apiError(response);
  const reader = response.body.getReader();
  const parts = [];
  let newlines = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    for (const byte of value) if (byte === 10) newlines += 1;
    // CSV: a header line first; JSON: "[" on its own line. Either way, one less.
    onProgress?.(Math.max(0, newlines - 1));
  }
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const fileName = /filename="([^"]+)"/.exec(disposition)?.[1] ?? `smokesignal.${format}`;
  return { blob: new Blob(parts, { type: response.headers.get("Content-Type") ?? "" }), fileName };
}

/** One execution, or null when the gateway does not know it. */
export async function getExecution(id, { signal } = {}) {
  try {
    return await getJson(`/api/executions/${encodeURIComponent(id)}`, { signal });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** getExecution, retried with backoff across brief network trouble (not across a 404). */
export async function getExecutionRetrying(id, attempts = 5) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await getExecution(id);
    } catch (error) {
      const transient = !(error instanceof ApiError) || error.status >= 500;
      if (!transient || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
    }
  }
}

/** Camera ids for the filter; the gateway may send strings or objects. */
export async function listCameras() {
  const body = await getJson("/api/cameras");
  return (body.cameras ?? [])
    .map((camera) =>
      typeof camera === "string"
        ? { id: camera, label: camera }
        : {
            id: camera.camera_id ?? camera.id,
            label: camera.location
              ? `${camera.camera_id ?? camera.id} — ${camera.location}`
              : (camera.camera_id ?? camera.id),
          },
    )
    .filter((camera) => camera.id);
}

export function imageUrl(id) {
  return `/api/executions/${encodeURIComponent(id)}/image`;
}

export function thumbnailUrl(id) {
  return `/api/executions/${encodeURIComponent(id)}/thumbnail`;
}

/**
 * The live stream's URL. `filters` (camera, alert_levels) make the gateway send only
 * the matching executions' events; ids are stream positions, so `lastEventId` resumes
 * a filtered stream like any other.
 */
export function eventsUrl(lastEventId, filters = {}) {
  const params = new URLSearchParams();
  if (filters.camera) params.set("camera", filters.camera);
  for (const level of filters.alert_levels ?? []) params.append("alert_level", level);
  if (lastEventId) params.set("last_event_id", lastEventId);
  const query = params.toString();
  return query ? `/api/events?${query}` : "/api/events";
}
