// Unit tests of the triage merges in the dashboard's store (services/gateway/static/store.js):
// an `execution:updated` and a REST snapshot may arrive in any order; the higher
// triage_revision wins. Run by `make test` (`node --test tests/js/`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ExecutionStore, triagedState } from "../../services/gateway/static/store.js";

const done = (id, extra = {}) => ({
  id,
  camera_id: "sai-cam-node-07",
  processing_stage: "stage2",
  alert_level: "high",
  retry_count: 0,
  false_positive: false,
  triage_revision: 0,
  ...extra,
});

const marked = (id, revision, extra = {}) => ({
  execution_id: id,
  false_positive: true,
  false_positive_reason: "fog",
  false_positive_by: "ana",
  false_positive_at: "2026-11-29T10:00:00Z",
  acknowledged_by: null,
  acknowledged_at: null,
  triage_revision: revision,
  ...extra,
});

test("an execution:updated marks the stored execution", () => {
  const store = new ExecutionStore();
  store.upsert(done(1));
  const state = store.applyTriage(marked(1, 1));
  assert.equal(state.false_positive, true);
  assert.equal(state.false_positive_by, "ana");
  assert.equal(state.triage_revision, 1);
  assert.equal(state.alert_level, "high");
  assert.equal("execution_id" in state, false);
});

test("a triage event for an unknown execution stores nothing", () => {
  const store = new ExecutionStore();
  assert.equal(store.applyTriage(marked(9, 1)), null);
  assert.equal(store.size, 0);
});

test("an older triage event never undoes a newer one", () => {
  const unmarked = { ...marked(1, 2), false_positive: false, false_positive_by: null };
  const state = triagedState(triagedState(done(1), unmarked), marked(1, 1));
  assert.equal(state.false_positive, false);
  assert.equal(state.triage_revision, 2);
});

test("a stale REST snapshot keeps the newer mark; a newer snapshot brings its own", () => {
  const store = new ExecutionStore();
  store.upsert(done(1));
  store.applyTriage(marked(1, 3));
  const stale = store.upsert(done(1, { triage_revision: 2 }));
  assert.equal(stale.false_positive, true);
  assert.equal(stale.triage_revision, 3);
  const fresh = store.upsert(done(1, { triage_revision: 4, acknowledged_by: "bo" }));
  assert.equal(fresh.false_positive, false);
  assert.equal(fresh.acknowledged_by, "bo");
  assert.equal(fresh.triage_revision, 4);
});

test("a snapshot of an older Stage 2 state still brings newer triage and detail fields", () => {
  const store = new ExecutionStore();
  store.upsert(done(1));
  const older = { ...done(1, { triage_revision: 1, false_positive: true }), processing_stage: "stage1" };
  const state = store.upsert({ ...older, detections: [] });
  assert.equal(state.processing_stage, "stage2");
  assert.equal(state.false_positive, true);
  assert.deepEqual(state.detections, []);
});
