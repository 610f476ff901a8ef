// REST calls of operator triage: false-positive marks, acknowledgements, open alerts,
// a camera's frame sequence, the audit trail.

import { getJson, postJson } from "./api.js";

/** Mark (or unmark) executions as false positives: {updated, not_found, unchanged}. */
export function setFalsePositive(ids, { falsePositive = true, reason = null, actor = null } = {}) {
  return postJson("/api/executions/bulk/false-positive", {
    execution_ids: ids,
    false_positive: falsePositive,
    ...(reason ? { reason } : {}),
    ...(actor ? { actor } : {}),
  });
}

export function acknowledge(ids, { actor = null } = {}) {
  return postJson("/api/executions/bulk/acknowledge", {
    execution_ids: ids,
    ...(actor ? { actor } : {}),
  });
}

/** Open alerts (high/critical, unacknowledged, not false positives) since `since`. */
export function listOpenAlerts(since) {
  const params = new URLSearchParams({ limit: "200" });
  if (since) params.set("since", since.toISOString());
  return getJson(`/api/alerts?${params}`);
}

/** The same camera's frames after ("next") or before ("previous") `id`, nearest first. */
export function getSequence(id, direction, limit = 20, { signal } = {}) {
  const params = new URLSearchParams({ direction, limit: String(limit) });
  return getJson(`/api/executions/${encodeURIComponent(id)}/sequence?${params}`, { signal });
}

export function getAudit(id) {
  return getJson(`/api/executions/${encodeURIComponent(id)}/audit`);
}
