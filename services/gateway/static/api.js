// REST client for the gateway API. A 401 asks for the token and retries.

import { askForToken, authHeaders, withTokenParam } from "./auth.js";
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

async function getJson(path, { signal } = {}) {
  for (;;) {
    const response = await fetch(path, {
      headers: { Accept: "application/json", ...authHeaders() },
      signal,
    });
    if (response.status === 401) {
      await askForToken();
      continue;
    }
    if (!response.ok) throw await apiError(response);
    return response.json();
  }
}

/** One page of executions, newest first: {items, next_cursor}. */
export function listExecutions(filters, cursor, { signal } = {}) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  if (filters.has_smoke != null) params.set("has_smoke", String(filters.has_smoke));
  if (filters.alert_level) params.set("alert_level", filters.alert_level);
  if (filters.camera) params.set("camera", filters.camera);
  if (filters.processing_stage) params.set("processing_stage", filters.processing_stage);
  return getJson(`/api/executions?${params}`, { signal });
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
  return withTokenParam(`/api/executions/${encodeURIComponent(id)}/image`);
}

export function thumbnailUrl(id) {
  return withTokenParam(`/api/executions/${encodeURIComponent(id)}/thumbnail`);
}

export function eventsUrl(lastEventId) {
  const path = lastEventId
    ? `/api/events?last_event_id=${encodeURIComponent(lastEventId)}`
    : "/api/events";
  return withTokenParam(path);
}
