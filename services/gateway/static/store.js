// The single source of truth: execution id → the latest known state of that execution.
// Pure data, no DOM. Every merge is monotonic, so events and REST snapshots may arrive
// in any order and the newest knowledge wins.

// Stage 2 only moves forward: pending → failed (retryable) → complete.
const STAGE_RANK = { stage1: 0, failed: 1, stage2: 2 };

function rank(state) {
  return STAGE_RANK[state.processing_stage] ?? 0;
}

/** Would `incoming` (a REST/batch snapshot) tell us more than `current`? */
function isNewer(incoming, current) {
  if (rank(incoming) !== rank(current)) return rank(incoming) > rank(current);
  return (incoming.retry_count ?? 0) >= (current.retry_count ?? 0);
}

export class ExecutionStore {
  #states = new Map();

  get size() {
    return this.#states.size;
  }

  get(id) {
    return this.#states.get(id);
  }

  has(id) {
    return this.#states.has(id);
  }

  clear() {
    this.#states.clear();
  }

  delete(id) {
    this.#states.delete(id);
  }

  /** Store a state as it is (the caller already merged it). */
  put(state) {
    this.#states.set(state.id, state);
    return state;
  }

  /** Merge a full ExecutionSummary; returns the resulting state. */
  upsert(summary) {
    const current = this.#states.get(summary.id);
    if (current && !isNewer(summary, current)) {
      // Older Stage 2 knowledge, but its triage (or detail) may still be newer.
      const next = { ...withDetail(current, summary), ...newerTriage(current, summary) };
      this.#states.set(summary.id, next);
      return next;
    }
    // Keep event-only extras (processing_time_ms) the snapshot does not carry.
    const next = current
      ? { ...current, ...summary, ...newerTriage(summary, current) }
      : { ...summary };
    this.#states.set(summary.id, next);
    return next;
  }

  /** Apply one triage state of an `execution:updated`; the new state, or null if unknown. */
  applyTriage(triage) {
    const current = this.#states.get(triage.execution_id);
    if (!current) return null;
    const next = triagedState(current, triage);
    this.#states.set(current.id, next);
    return next;
  }

  /** Apply an `etl:stage2:complete` payload; returns the new state, or null if unknown. */
  applyComplete(event) {
    const current = this.#states.get(event.execution_id);
    if (!current) return null;
    const next = completedState(current, event);
    this.#states.set(current.id, next);
    return next;
  }

  /** Apply an `etl:stage2:failed` payload; returns the new state, or null if unknown. */
  applyFailed(event) {
    const current = this.#states.get(event.execution_id);
    if (!current) return null;
    const next = failedState(current, event);
    this.#states.set(current.id, next);
    return next;
  }
}

const TRIAGE_FIELDS = [
  "false_positive",
  "false_positive_reason",
  "false_positive_by",
  "false_positive_at",
  "acknowledged_by",
  "acknowledged_at",
  "triage_revision",
];

/** The triage fields of `other` when they are newer than those of `base` (else none). */
function newerTriage(base, other) {
  if ((other.triage_revision ?? 0) <= (base.triage_revision ?? 0)) return {};
  return Object.fromEntries(TRIAGE_FIELDS.map((name) => [name, other[name] ?? null]));
}

/** Detail-only fields (detections, image size…) from a fresh read, without its stage. */
function withDetail(current, fresh) {
  const extra = {};
  for (const [name, value] of Object.entries(fresh)) {
    if (!(name in current) && value !== undefined) extra[name] = value;
  }
  return { ...current, ...extra };
}

/** `state` with a triage state from `execution:updated`, unless it knows a newer one. */
export function triagedState(state, triage) {
  if ((triage.triage_revision ?? 0) <= (state.triage_revision ?? 0)) return state;
  const { execution_id: _id, ...fields } = triage;
  return { ...state, ...fields };
}

export function completedState(state, event) {
  const data = event.extracted_data ?? {};
  return {
    ...state,
    processing_stage: "stage2",
    has_smoke: data.has_smoke ?? state.has_smoke,
    alert_level: data.alert_level ?? state.alert_level,
    detection_count: data.detection_count ?? state.detection_count,
    has_image: data.has_image ?? state.has_image,
    telegram_sent: data.telegram_sent ?? state.telegram_sent,
    extracted_at: state.extracted_at ?? event.timestamp,
    processing_time_ms: event.processing_time_ms,
    stage2_error: null,
  };
}

export function failedState(state, event) {
  // A completion is final; a failure report older than what we know changes nothing.
  if (state.processing_stage === "stage2") return state;
  if ((event.retry_count ?? 0) < (state.retry_count ?? 0)) return state;
  return {
    ...state,
    processing_stage: "failed",
    stage2_error: event.error,
    retry_count: event.retry_count,
  };
}

/** Does a state pass the active filters (the same ones the REST API applies)? */
// The filter check lives with the filters; re-exported for the modules that import it here.
export { matchesFilters } from "./filters.js";
