// REST client for the gateway API. A 401 asks for the token and retries.

import { askForToken, authHeaders, withTokenParam } from "./auth.js";

export const PAGE_SIZE = 50;

export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return response.statusText || "request failed";
  }
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
    if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
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
