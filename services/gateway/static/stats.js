// The statistics page: totals, executions per hour/day/week stacked by alert level,
// smoke detections over time, and rankings, all for the filters in the URL. Every bar
// and ranking row links to the gallery filtered to that slice.

import { describeError, getStats, listCameras, listLocations } from "./api.js";
import { ensureSignedIn } from "./auth.js";
import { legend, stackedBars } from "./charts.js";
import {
  ALERT_LEVELS,
  fillCameras,
  fillLocations,
  filtersFromUrl,
  filtersToSearch,
  readForm,
  showCustomRange,
  timeBounds,
  writeForm,
} from "./filters.js";
import { alertLabel, percent } from "./format.js";
import { bindLanguageSwitch, dateFormat, formatNumber, t, translatePage } from "./i18n.js";
import { ErrorBanner } from "./status.js";

const INTERVALS = ["hour", "day", "week"];
const MAX_COLUMNS = 1000; // beyond this, empty buckets are not filled in
const HOUR_MS = 3600e3;
const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

const form = document.getElementById("filters");
const errors = new ErrorBanner(document.getElementById("error-banner"));
const summarySection = document.querySelector(".stats-summary");
let request = null;

function intervalFromUrl() {
  const value = new URLSearchParams(window.location.search).get("interval");
  return INTERVALS.includes(value) ? value : null;
}

/** Hour for up to two days, day for up to ~three months, else week. */
function autoInterval(filters) {
  if (filters.range === "1h" || filters.range === "24h") return "hour";
  if (filters.range === "7d" || filters.range === "30d" || filters.range === "all") return "day";
  const { since, until } = timeBounds(filters);
  if (!since) return "day";
  const span = (until ?? new Date()).getTime() - since.getTime();
  if (span <= 48 * HOUR_MS) return "hour";
  return span <= 92 * 24 * HOUR_MS ? "day" : "week";
}

// -- buckets in the browser's time zone (the server truncates in the same zone) ---

function floorTo(interval, date) {
  const d = new Date(date);
  if (interval === "hour") d.setMinutes(0, 0, 0);
  else d.setHours(0, 0, 0, 0);
  if (interval === "week") d.setDate(d.getDate() - ((d.getDay() + 6) % 7)); // ISO: Monday
  return d;
}

function nextBucket(interval, date) {
  const d = new Date(date);
  if (interval === "hour") return new Date(d.getTime() + HOUR_MS);
  d.setDate(d.getDate() + (interval === "week" ? 7 : 1));
  return d;
}

/** Every bucket from the range's start (or the first data) to its end, empty ones too. */
function allBuckets(interval, filters, buckets) {
  const byTime = new Map(buckets.map((b) => [new Date(b.start).getTime(), b]));
  const { since, until } = timeBounds(filters);
  const firstData = buckets.length ? new Date(buckets[0].start) : null;
  const lastData = buckets.length ? new Date(buckets.at(-1).start) : null;
  const start = floorTo(interval, since ?? firstData ?? new Date());
  const end = until ?? (filters.range === "all" ? lastData : new Date()) ?? new Date();
  const columns = [];
  for (let at = start; at < end || at.getTime() === start.getTime(); at = nextBucket(interval, at)) {
    if (columns.length >= MAX_COLUMNS) return buckets.map((b) => ({ start: new Date(b.start), bucket: b }));
    columns.push({ start: at, bucket: byTime.get(at.getTime()) ?? null });
    if (at >= end) break;
  }
  return columns;
}

const LABEL_FORMATS = {
  hour: dateFormat({ month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }),
  day: dateFormat({ month: "short", day: "numeric" }),
  week: dateFormat({ month: "short", day: "numeric" }),
};
const TITLE_FORMAT = dateFormat({ dateStyle: "medium", timeStyle: "short" });

// -- links to the gallery --------------------------------------------------------

function galleryLink(filters, changes) {
  return `/${filtersToSearch({ ...filters, ...changes })}`;
}

/** The gallery for one bucket (clipped to the page's range) and one series. */
function sliceLink(filters, start, end, seriesKey) {
  const { since, until } = timeBounds(filters);
  const from = since && since > start ? since : start;
  const to = until && until < end ? until : end;
  const changes = { range: "custom", since: from.toISOString(), until: to.toISOString() };
  if (ALERT_LEVELS.includes(seriesKey)) changes.alert_levels = [seriesKey];
  if (seriesKey === "pending") changes.processing_stage = "stage1";
  if (seriesKey === "failed") changes.processing_stage = "failed";
  if (seriesKey === "smoke") changes.has_smoke = true;
  return galleryLink(filters, changes);
}

// -- rendering -------------------------------------------------------------------

function renderSummary(totals) {
  const values = {
    executions: formatNumber(totals.executions),
    smoke: formatNumber(totals.smoke),
    detections: formatNumber(totals.detections),
    average_confidence: percent(totals.average_confidence),
    false_positives: formatNumber(totals.false_positives),
    pending_failed: `${formatNumber(totals.pending)} / ${formatNumber(totals.failed)}`,
  };
  for (const [name, text] of Object.entries(values)) {
    summarySection.querySelector(`[data-total="${name}"]`).textContent = text;
  }
}

const LEVEL_SERIES = [
  ...ALERT_LEVELS.map((level) => ({
    key: level,
    label: alertLabel(level),
    className: `fill-${level}`,
  })),
  { key: "pending", label: t("stage.stage1"), className: "fill-pending" },
  { key: "failed", label: t("stage.failed"), className: "fill-failed" },
];
const SMOKE_SERIES = [{ key: "smoke", label: t("stats.smoke"), className: "fill-smoke" }];

function renderCharts(filters, interval, series) {
  const columns = allBuckets(interval, filters, series.buckets).map(({ start, bucket }) => {
    const end = nextBucket(interval, start);
    const totals = bucket?.totals;
    const values = { smoke: totals?.smoke ?? 0, pending: totals?.pending ?? 0 };
    values.failed = totals?.failed ?? 0;
    for (const level of ALERT_LEVELS) values[level] = totals?.by_level[level] ?? 0;
    return {
      label: LABEL_FORMATS[interval].format(start),
      title: TITLE_FORMAT.format(start),
      values,
      href: (key) => sliceLink(filters, start, end, key),
    };
  });
  const chartOptions = { columns, formatNumber: (n) => formatNumber(n) };
  stackedBars(document.getElementById("levels-chart"), {
    ...chartOptions,
    series: LEVEL_SERIES,
    description: t("stats.executions_by_level"),
  });
  stackedBars(document.getElementById("smoke-chart"), {
    ...chartOptions,
    series: SMOKE_SERIES,
    description: t("stats.smoke_over_time"),
  });
  document.getElementById("levels-chart").dataset.interval = interval;
}

function cell(tag, content) {
  const element = document.createElement(tag);
  element.append(content);
  return element;
}

function renderRanking(table, filters, ranking) {
  const { by, order } = table.dataset;
  const headRow = document.createElement("tr");
  headRow.append(
    cell("th", t(by === "camera" ? "field.camera" : "field.location")),
    cell("th", t(order === "smoke" ? "stats.smoke" : "stats.false_positives")),
    cell("th", t("stats.executions")),
    cell("th", t("stats.average_confidence")),
  );
  for (const th of headRow.children) th.scope = "col";
  const head = document.createElement("thead");
  head.append(headRow);
  const body = document.createElement("tbody");
  for (const item of ranking.items) {
    const row = document.createElement("tr");
    let name;
    if (item.key == null) {
      name = t("stats.no_location");
    } else {
      name = document.createElement("a");
      name.textContent = item.key;
      const changes = { [by]: item.key };
      if (order === "smoke") changes.has_smoke = true;
      if (order === "false_positives") changes.false_positive = true;
      name.href = galleryLink(filters, changes);
    }
    const measure = order === "smoke" ? item.totals.smoke : item.totals.false_positives;
    row.append(
      cell("th", name),
      cell("td", formatNumber(measure)),
      cell("td", formatNumber(item.totals.executions)),
      cell("td", percent(item.totals.average_confidence)),
    );
    row.firstElementChild.scope = "row";
    row.dataset.key = item.key ?? "";
    body.append(row);
  }
  if (ranking.items.length === 0) {
    const empty = cell("td", t("stats.nothing"));
    empty.colSpan = 4;
    body.append(cell("tr", empty));
  }
  table.replaceChildren(head, body);
}

async function load() {
  request?.abort();
  const current = new AbortController();
  request = current;
  const filters = filtersFromUrl();
  const interval = intervalFromUrl() ?? autoInterval(filters);
  const options = { signal: current.signal };
  summarySection.setAttribute("aria-busy", "true");
  try {
    const tables = [...document.querySelectorAll("table.ranking")];
    const [summary, series, ...rankings] = await Promise.all([
      getStats("summary", filters, {}, options),
      getStats("timeseries", filters, { interval, tz: TIME_ZONE }, options),
      ...tables.map((table) =>
        getStats("ranking", filters, { by: table.dataset.by, order: table.dataset.order }, options),
      ),
    ]);
    if (request !== current) return;
    renderSummary(summary);
    renderCharts(filters, interval, series);
    tables.forEach((table, index) => renderRanking(table, filters, rankings[index]));
    errors.clear();
  } catch (error) {
    if (error.name !== "AbortError") {
      errors.show(t("errors.load_stats", { reason: describeError(error) }));
    }
  } finally {
    if (request === current) summarySection.setAttribute("aria-busy", "false");
  }
}

function showUrlInForm() {
  writeForm(form, filtersFromUrl());
  form.elements.interval.value = intervalFromUrl() ?? "";
}

form.addEventListener("change", (event) => {
  if (event.target.name === "range") showCustomRange(form);
  const search = filtersToSearch(readForm(form), { interval: form.elements.interval.value });
  if (search !== window.location.search) {
    window.history.pushState(null, "", `${window.location.pathname}${search}`);
  }
  load();
});
form.addEventListener("submit", (event) => event.preventDefault());
window.addEventListener("popstate", () => {
  showUrlInForm();
  load();
});

async function main() {
  translatePage();
  bindLanguageSwitch(document.getElementById("language"));
  legend(document.getElementById("levels-legend"), LEVEL_SERIES);
  showUrlInForm();
  await ensureSignedIn();
  try {
    fillCameras(form, await listCameras());
    fillLocations(form, await listLocations());
  } catch (error) {
    errors.show(t("errors.load_cameras", { reason: describeError(error) }));
  }
  await load();
}

main();
