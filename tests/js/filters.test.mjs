// Unit tests of the dashboard's filter logic (services/gateway/static/filters.js):
// URL <-> filters object <-> REST parameters, which live events pass, and which may
// change the match count.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  apiParams,
  countMayChange,
  filtersFromUrl,
  filtersToSearch,
  matchesFilters,
  timeBounds,
} from "../../services/gateway/static/filters.js";

const NOW = Date.parse("2026-11-29T12:00:00Z");

test("a URL round-trips through the filters object", () => {
  const search = "?range=24h&alert_level=high&alert_level=critical&camera=cam-1&has_smoke=true";
  const filters = filtersFromUrl(search);
  assert.deepEqual(filters.alert_levels, ["high", "critical"]);
  assert.equal(filters.range, "24h");
  assert.equal(filters.has_smoke, true);
  assert.equal(filtersToSearch(filters), search);
});

test("an unknown range with since/until is custom; without them it is all", () => {
  assert.equal(filtersFromUrl("?since=2026-11-01T00:00Z").range, "custom");
  assert.equal(filtersFromUrl("?range=bogus").range, "all");
  assert.equal(filtersToSearch(filtersFromUrl("")), "");
});

test("a preset range resolves against now; custom times are parsed", () => {
  const { since, until } = timeBounds({ range: "1h" }, NOW);
  assert.equal(since.toISOString(), "2026-11-29T11:00:00.000Z");
  assert.equal(until, null);
  const custom = timeBounds({ range: "custom", since: "2026-11-01T00:00:00Z", until: "nope" }, NOW);
  assert.equal(custom.since.toISOString(), "2026-11-01T00:00:00.000Z");
  assert.equal(custom.until, null);
});

test("REST parameters: an unparsable custom time goes to the server as typed", () => {
  const params = apiParams({ range: "custom", since: "yesterday", alert_levels: ["low"] }, NOW);
  assert.equal(params.get("since"), "yesterday");
  assert.deepEqual(params.getAll("alert_level"), ["low"]);
});

test("matchesFilters applies the same filters as the REST API", () => {
  const state = {
    started_at: "2026-11-29T11:30:00Z",
    processing_stage: "stage2",
    has_smoke: true,
    alert_level: "high",
    camera_id: "cam-1",
    location: "Ridge",
  };
  assert.ok(matchesFilters(state, {}, NOW));
  assert.ok(matchesFilters(state, { alert_levels: ["high", "critical"] }, NOW));
  assert.ok(!matchesFilters(state, { alert_levels: ["low"] }, NOW));
  assert.ok(!matchesFilters(state, { has_smoke: false }, NOW));
  assert.ok(!matchesFilters(state, { camera: "cam-2" }, NOW));
  assert.ok(!matchesFilters(state, { location: "Lake" }, NOW));
  assert.ok(!matchesFilters(state, { processing_stage: "failed" }, NOW));
  assert.ok(!matchesFilters(state, { false_positive: true }, NOW));
  assert.ok(matchesFilters(state, { range: "1h" }, NOW));
  assert.ok(!matchesFilters({ ...state, started_at: "2026-11-29T10:00:00Z" }, { range: "1h" }, NOW));
});

test("the match count is re-read after any live event that may move the filtered total", () => {
  const pending = {
    started_at: "2026-11-29T11:59:00Z",
    processing_stage: "stage1",
    has_smoke: null,
    alert_level: null,
    camera_id: "cam-1",
  };
  const critical = { alert_levels: ["critical"], camera: "cam-1" };
  // The drift seen: with an alert filter, a new execution (no level yet) is not
  // counted, but its completion adds a card (fetched by id): the total moved too.
  assert.ok(!countMayChange(critical, "new", pending, NOW));
  assert.ok(countMayChange(critical, "complete", null, NOW));
  // A completion or failure takes an execution out of "Processing", shown or not.
  assert.ok(countMayChange({ processing_stage: "stage1" }, "complete", null, NOW));
  assert.ok(countMayChange({ processing_stage: "stage1" }, "failed", null, NOW));
  assert.ok(countMayChange({ has_smoke: true }, "complete", null, NOW));
  // "Hide false positives": a mark (ours or another operator's) removes one.
  assert.ok(countMayChange({ false_positive: false }, "triage", null, NOW));
  // Events that change no filtered field leave the total alone (no needless re-count).
  assert.ok(!countMayChange(critical, "triage", null, NOW));
  assert.ok(!countMayChange({ camera: "cam-1", range: "1h" }, "complete", null, NOW));
  assert.ok(!countMayChange({ false_positive: true }, "failed", null, NOW));
  // A new execution counts when it passes the filters (no filters: every one).
  assert.ok(countMayChange({}, "new", pending, NOW));
  assert.ok(countMayChange({ camera: "cam-1" }, "new", pending, NOW));
  assert.ok(!countMayChange({ camera: "cam-2" }, "new", pending, NOW));
});
