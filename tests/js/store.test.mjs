// Unit tests of the dashboard's store (services/gateway/static/store.js): pure data, no DOM.
// Run by `make test` (`node --test tests/js/`).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ExecutionStore,
  completedState,
  failedState,
  matchesFilters,
} from "../../services/gateway/static/store.js";

function pending(id, extra = {}) {
  return {
    id,
    camera_id: "sai-cam-node-07",
    processing_stage: "stage1",
    has_smoke: null,
    alert_level: null,
    retry_count: 0,
    ...extra,
  };
}

const complete = (id, extra = {}) => ({
  execution_id: id,
  stage: "stage2",
  processing_time_ms: 12.5,
  extracted_data: {
    has_smoke: true,
    alert_level: "high",
    detection_count: 2,
    has_image: true,
    telegram_sent: false,
  },
  timestamp: "2026-11-29T10:00:00Z",
  ...extra,
});

test("upsert stores a new execution and returns it", () => {
  const store = new ExecutionStore();
  const state = store.upsert(pending(1));
  assert.equal(store.size, 1);
  assert.equal(store.get(1), state);
  assert.ok(store.has(1));
});

test("an older snapshot never overwrites newer knowledge", () => {
  const store = new ExecutionStore();
  store.upsert(pending(1, { processing_stage: "stage2", alert_level: "low" }));
  const kept = store.upsert(pending(1));
  assert.equal(kept.processing_stage, "stage2");
  assert.equal(kept.alert_level, "low");
});

test("a failure with more attempts replaces one with fewer; fewer does not", () => {
  const store = new ExecutionStore();
  store.upsert(pending(1, { processing_stage: "failed", retry_count: 2 }));
  assert.equal(store.upsert(pending(1, { processing_stage: "failed", retry_count: 1 })).retry_count, 2);
  assert.equal(store.upsert(pending(1, { processing_stage: "failed", retry_count: 3 })).retry_count, 3);
});

test("a snapshot keeps event-only extras such as processing_time_ms", () => {
  const store = new ExecutionStore();
  store.upsert(pending(1));
  store.applyComplete(complete(1));
  const merged = store.upsert(pending(1, { processing_stage: "stage2", alert_level: "high" }));
  assert.equal(merged.processing_time_ms, 12.5);
});

test("events for an unknown execution return null and store nothing", () => {
  const store = new ExecutionStore();
  assert.equal(store.applyComplete(complete(9)), null);
  assert.equal(store.applyFailed({ execution_id: 9, error: "x", retry_count: 1 }), null);
  assert.equal(store.size, 0);
});

test("applyComplete fills the results from the event", () => {
  const store = new ExecutionStore();
  store.upsert(pending(1, { stage2_error: "earlier failure" }));
  const state = store.applyComplete(complete(1));
  assert.equal(state.processing_stage, "stage2");
  assert.equal(state.has_smoke, true);
  assert.equal(state.alert_level, "high");
  assert.equal(state.detection_count, 2);
  assert.equal(state.has_image, true);
  assert.equal(state.telegram_sent, false);
  assert.equal(state.extracted_at, "2026-11-29T10:00:00Z");
  assert.equal(state.stage2_error, null);
  assert.equal(store.get(1), state);
});

test("completedState keeps a known extracted_at and fields the event leaves out", () => {
  const state = pending(1, { extracted_at: "earlier", has_smoke: false });
  const next = completedState(state, { execution_id: 1, processing_time_ms: 1, timestamp: "later" });
  assert.equal(next.extracted_at, "earlier");
  assert.equal(next.has_smoke, false);
});

test("a failure after completion changes nothing (completion is final)", () => {
  const done = completedState(pending(1), complete(1));
  assert.equal(failedState(done, { execution_id: 1, error: "late", retry_count: 5 }), done);
});

test("an older failure report than the one known changes nothing", () => {
  const failed = failedState(pending(1), { execution_id: 1, error: "second", retry_count: 2 });
  assert.equal(failed.processing_stage, "failed");
  assert.equal(failed.stage2_error, "second");
  assert.equal(failedState(failed, { execution_id: 1, error: "first", retry_count: 1 }), failed);
});

test("put, delete and clear", () => {
  const store = new ExecutionStore();
  store.put(pending(1));
  store.put(pending(2));
  store.delete(1);
  assert.deepEqual([store.has(1), store.has(2)], [false, true]);
  store.clear();
  assert.equal(store.size, 0);
});

test("matchesFilters applies the REST API's filters", () => {
  const state = pending(1, { processing_stage: "stage2", has_smoke: true, alert_level: "high" });
  assert.ok(matchesFilters(state, {}));
  assert.ok(matchesFilters(state, { has_smoke: true, alert_levels: ["high"] }));
  assert.ok(matchesFilters(state, { alert_levels: ["critical", "high"] }));
  assert.ok(!matchesFilters(state, { has_smoke: false }));
  assert.ok(!matchesFilters(state, { alert_levels: ["low"] }));
  assert.ok(matchesFilters(state, { camera: "sai-cam-node-07" }));
  assert.ok(!matchesFilters(state, { camera: "sai-cam-node-01" }));
  assert.ok(!matchesFilters(state, { processing_stage: "failed" }));
});

test("matchesFilters: location, false positives and time ranges", () => {
  const state = pending(2, {
    location: "Cerro Catedral",
    false_positive: true,
    started_at: "2026-11-29T10:00:00Z",
  });
  assert.ok(matchesFilters(state, { location: "Cerro Catedral", false_positive: true }));
  assert.ok(!matchesFilters(state, { location: "Villa" }));
  assert.ok(!matchesFilters(state, { false_positive: false }));
  const custom = (since, until) => ({ range: "custom", since, until });
  assert.ok(matchesFilters(state, custom("2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z")));
  assert.ok(!matchesFilters(state, custom("2026-11-29T10:00:01Z", null))); // since inclusive
  assert.ok(!matchesFilters(state, custom(null, "2026-11-29T10:00:00Z"))); // until exclusive
  const now = Date.parse("2026-11-29T10:30:00Z");
  assert.ok(matchesFilters(state, { range: "1h" }, now));
  assert.ok(!matchesFilters(state, { range: "1h" }, now + 3600e3));
});
