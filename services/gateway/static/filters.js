// The dashboard's filters: page URL ↔ filters object ↔ form ↔ REST query parameters.
// The URL is the source of truth, so a link reproduces the view and back/forward work.
// Query parameters match the REST API's, plus `range` (1h, 24h, 7d, 30d: relative to
// when the view is opened; custom: `since`/`until` as absolute ISO times).

import { t } from "./i18n.js";

export const ALERT_LEVELS = ["none", "low", "medium", "high", "critical"];
export const RANGES = ["all", "1h", "24h", "7d", "30d", "custom"];
const RANGE_MS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };

/** The filters a URL's query string describes. */
export function filtersFromUrl(search = window.location.search) {
  const params = new URLSearchParams(search);
  let range = params.get("range");
  if (!RANGES.includes(range)) range = params.has("since") || params.has("until") ? "custom" : "all";
  return {
    range,
    since: range === "custom" ? params.get("since") : null,
    until: range === "custom" ? params.get("until") : null,
    alert_levels: params.getAll("alert_level"),
    camera: params.get("camera"),
    location: params.get("location"),
    has_smoke: params.get("has_smoke") === "true" ? true : null,
    processing_stage: params.get("processing_stage"),
    false_positive: booleanParam(params.get("false_positive")),
  };
}

function booleanParam(value) {
  if (value === "true") return true;
  return value === "false" ? false : null;
}

/** The query string for a filters object (only what is set), plus `extra` pairs. */
export function filtersToSearch(filters, extra = {}) {
  const params = new URLSearchParams();
  if (filters.range && filters.range !== "all") params.set("range", filters.range);
  if (filters.range === "custom") {
    if (filters.since) params.set("since", filters.since);
    if (filters.until) params.set("until", filters.until);
  }
  for (const level of filters.alert_levels ?? []) params.append("alert_level", level);
  if (filters.camera) params.set("camera", filters.camera);
  if (filters.location) params.set("location", filters.location);
  if (filters.has_smoke != null) params.set("has_smoke", String(filters.has_smoke));
  if (filters.processing_stage) params.set("processing_stage", filters.processing_stage);
  if (filters.false_positive != null) params.set("false_positive", String(filters.false_positive));
  for (const [name, value] of Object.entries(extra)) {
    if (value != null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** since/until as Dates (a preset resolves against `now`); null when open. */
export function timeBounds(filters, now = Date.now()) {
  if (filters.range in RANGE_MS) return { since: new Date(now - RANGE_MS[filters.range]), until: null };
  if (filters.range !== "custom") return { since: null, until: null };
  const parse = (text) => {
    const date = text ? new Date(text) : null;
    return date && !Number.isNaN(date.getTime()) ? date : null;
  };
  return { since: parse(filters.since), until: parse(filters.until) };
}

/** The REST API's query parameters for these filters. */
export function apiParams(filters, now = Date.now()) {
  const params = new URLSearchParams();
  const { since, until } = timeBounds(filters, now);
  // An unparsable custom time goes to the server as typed: its 422 names the parameter.
  if (since) params.set("since", since.toISOString());
  else if (filters.range === "custom" && filters.since) params.set("since", filters.since);
  if (until) params.set("until", until.toISOString());
  else if (filters.range === "custom" && filters.until) params.set("until", filters.until);
  for (const level of filters.alert_levels ?? []) params.append("alert_level", level);
  if (filters.camera) params.set("camera", filters.camera);
  if (filters.location) params.set("location", filters.location);
  if (filters.has_smoke != null) params.set("has_smoke", String(filters.has_smoke));
  if (filters.processing_stage) params.set("processing_stage", filters.processing_stage);
  if (filters.false_positive != null) params.set("false_positive", String(filters.false_positive));
  return params;
}

// <input type="datetime-local"> speaks local wall time without a zone.
function toLocalInput(iso) {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

function fromLocalInput(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** The filters the form shows now. */
export function readForm(form) {
  const data = new FormData(form);
  const range = data.get("range") || "all";
  return {
    range,
    since: range === "custom" ? fromLocalInput(data.get("since")) : null,
    until: range === "custom" ? fromLocalInput(data.get("until")) : null,
    alert_levels: data.getAll("alert_level"),
    camera: data.get("camera") || null,
    location: data.get("location") || null,
    has_smoke: data.get("has_smoke") === "true" ? true : null,
    processing_stage: data.get("processing_stage") || null,
    false_positive: booleanParam(data.get("false_positive")),
  };
}

function ensureOption(select, value) {
  if (value && ![...select.options].some((option) => option.value === value)) {
    select.add(new Option(value, value));
  }
}

/** Show `filters` in the form (options missing from a select are added, so a link works). */
export function writeForm(form, filters) {
  const elements = form.elements;
  elements.range.value = filters.range;
  elements.since.value = toLocalInput(filters.since);
  elements.until.value = toLocalInput(filters.until);
  showCustomRange(form);
  for (const box of form.querySelectorAll('input[name="alert_level"]')) {
    box.checked = filters.alert_levels.includes(box.value);
  }
  for (const name of ["camera", "location"]) {
    ensureOption(elements[name], filters[name]);
    elements[name].value = filters[name] ?? "";
  }
  elements.has_smoke.checked = filters.has_smoke === true;
  if (elements.processing_stage) elements.processing_stage.value = filters.processing_stage ?? "";
  elements.false_positive.value = filters.false_positive == null ? "" : String(filters.false_positive);
}

/** The custom range's two inputs show only for "custom". */
export function showCustomRange(form) {
  const custom = form.elements.range.value === "custom";
  for (const element of form.querySelectorAll(".filter-custom")) element.hidden = !custom;
}

function fillSelect(select, allKey, items) {
  const chosen = select.value;
  const options = items.map(({ id, label }) => new Option(label, id));
  select.replaceChildren(new Option(t(allKey), ""), ...options);
  ensureOption(select, chosen);
  select.value = chosen;
}

export function fillCameras(form, cameras) {
  fillSelect(form.elements.camera, "filters.all_cameras", cameras);
}

export function fillLocations(form, locations) {
  fillSelect(
    form.elements.location,
    "filters.all_locations",
    locations.map((name) => ({ id: name, label: name })),
  );
}

/** Offer a camera first seen in a live event (keeps the options sorted). */
export function addCamera(form, id) {
  const select = form.elements.camera;
  const options = [...select.options].slice(1); // after "All cameras"
  if (!id || options.some((option) => option.value === id)) return;
  const before = options.find((option) => option.value.localeCompare(id) > 0) ?? null;
  select.add(new Option(id, id), before);
}

/** Whether an execution passes the filters (live events are checked with this). */
export function matchesFilters(state, filters, now = Date.now()) {
  if (filters.has_smoke != null && state.has_smoke !== filters.has_smoke) return false;
  if (filters.alert_levels?.length && !filters.alert_levels.includes(state.alert_level)) {
    return false;
  }
  if (filters.camera && state.camera_id !== filters.camera) return false;
  if (filters.location && state.location !== filters.location) return false;
  if (filters.processing_stage && state.processing_stage !== filters.processing_stage) {
    return false;
  }
  if (filters.false_positive != null && Boolean(state.false_positive) !== filters.false_positive) {
    return false;
  }
  const { since, until } = timeBounds(filters, now);
  const started = new Date(state.started_at).getTime();
  if (since && !(started >= since.getTime())) return false;
  if (until && !(started < until.getTime())) return false;
  return true;
}

// The fields each kind of live event changes on an execution that already exists.
const CHANGED_BY = {
  complete: ["processing_stage", "has_smoke", "alert_level"],
  failed: ["processing_stage"],
  triage: ["false_positive"],
};
const FILTERED_BY = {
  processing_stage: (filters) => Boolean(filters.processing_stage),
  has_smoke: (filters) => filters.has_smoke != null,
  alert_level: (filters) => Boolean(filters.alert_levels?.length),
  false_positive: (filters) => filters.false_positive != null,
};

/**
 * Whether a live event may change how many executions pass the filters (the server's
 * count must then be read again). A new execution counts when it passes them. A
 * change to an existing one can move it into or out of the filtered set whenever a
 * filter reads a field the event changes — even when the page does not show it (it
 * may sit beyond the loaded pages), so this does not depend on the page's cards.
 */
export function countMayChange(filters, kind, state = null, now = Date.now()) {
  if (kind === "new") return state != null && matchesFilters(state, filters, now);
  return (CHANGED_BY[kind] ?? []).some((field) => FILTERED_BY[field](filters));
}
