// Dashboard wiring: REST pages and live events go into the store, the store's states go
// onto the screen. The store holds exactly the executions the gallery shows.

import {
  countExecutions,
  describeError,
  getExecution,
  getExecutionRetrying,
  listCameras,
  listExecutions,
  listLocations,
} from "./api.js";
import { AlertCenter } from "./alerts.js";
import { ensureSignedIn, onSessionChange, signIn, signOut } from "./auth.js";
import { DetailView } from "./detail.js";
import { ExportControl } from "./export.js";
import {
  addCamera,
  countMayChange,
  fillCameras,
  fillLocations,
  filtersFromUrl,
  filtersToSearch,
  readForm,
  showCustomRange,
  writeForm,
} from "./filters.js";
import { Gallery } from "./gallery.js";
import { bindLanguageSwitch, t, translatePage } from "./i18n.js";
import { LiveConnection } from "./live.js";
import { bindOperatorName } from "./operator.js";
import { canOperate } from "./roles.js";
import { Selection } from "./selection.js";
import { Announcer, ConnectionBadge, ErrorBanner } from "./status.js";
import {
  ExecutionStore,
  completedState,
  failedState,
  matchesFilters,
  triagedState,
} from "./store.js";

const FIRST_CONNECTION_WAIT_MS = 5000;

const form = document.getElementById("filters");
const galleryList = document.getElementById("gallery");
const emptyNote = document.getElementById("gallery-empty");
const loadMoreButton = document.getElementById("load-more");
const shownCount = document.getElementById("shown-count");
const matchCount = document.getElementById("match-count");
const COUNT_REFRESH_MS = 3000; // live events move the total; re-count at most this often

const store = new ExecutionStore();
const gallery = new Gallery(galleryList, { onOpen: openDetail });
const detail = new DetailView(document.getElementById("detail"), {
  listNeighbour: (id, offset) => {
    const neighbour = gallery.neighbour(id, offset);
    return neighbour == null ? null : (store.get(neighbour) ?? null);
  },
  fetchDetail: (id) => getExecution(id),
  onShow: (state) => showInUrl(state?.id ?? null),
  onTriage: (states) => applyTriageStates(states),
});
const badge = new ConnectionBadge(document.getElementById("connection-status"));
const errors = new ErrorBanner(document.getElementById("error-banner"));
const announcer = new Announcer(document.getElementById("announcer"));
const alerts = new AlertCenter(document.getElementById("alert-banner"), {
  soundBox: document.getElementById("alert-sound"),
  notifyButton: document.getElementById("alert-notify"),
  onOpen: (state) => openDetail(state.id, state),
});
const selection = new Selection(galleryList, document.getElementById("bulk-bar"), {
  onTriage: (states) => applyTriageStates(states),
  onError: (message) => errors.show(message),
});

// The open execution is named in the URL (?execution=ID), so a link opens it.
const EXECUTION_PARAM = "execution";

function showInUrl(id) {
  const url = new URL(window.location.href);
  if (id == null) url.searchParams.delete(EXECUTION_PARAM);
  else url.searchParams.set(EXECUTION_PARAM, String(id));
  if (url.href !== window.location.href) window.history.replaceState(window.history.state, "", url);
}

function executionInUrl() {
  const value = Number(new URL(window.location.href).searchParams.get(EXECUTION_PARAM));
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

let filters = filtersFromUrl();
let countRequest = null; // AbortController of the count in flight
let countTimer = null;
let generation = 0; // bumped by every reload; late answers for an older one are dropped
let pageRequest = null; // AbortController of the page load in flight
let nextCursor = null;
const fetches = new Map(); // id → in-flight fetch, so concurrent events share one request

// -- rendering ---------------------------------------------------------------

/** Put a changed state on screen (or take it off, if it no longer passes the filters). */
function render(state, { highlight = false } = {}) {
  if (matchesFilters(state, filters)) {
    gallery.show(state, { highlight });
    addCamera(form, state.camera_id);
  } else {
    gallery.remove(state.id);
    store.delete(state.id);
    selection.forget(state.id);
  }
  detail.refresh(state);
  alerts.consider(state);
  updateCounts();
}

function updateCounts() {
  shownCount.textContent = t("gallery.shown", { count: gallery.size });
  emptyNote.hidden = gallery.size > 0 || pageRequest !== null;
}

/** The total for the current filters (exact; the server says if it ever is not). */
async function refreshCount() {
  countRequest?.abort();
  const request = new AbortController();
  countRequest = request;
  try {
    const { count, exact } = await countExecutions(filters, { signal: request.signal });
    if (countRequest !== request) return;
    matchCount.textContent = t(exact ? "count.exact" : "count.estimate", { count });
    matchCount.dataset.count = String(count);
  } catch (error) {
    if (error.name !== "AbortError") matchCount.textContent = t("count.unknown");
  }
}

/** A live event may change the total (countMayChange): re-count soon, once for a burst. */
function scheduleCount(kind, state = null) {
  if (countTimer !== null || !countMayChange(filters, kind, state)) return;
  countTimer = setTimeout(() => {
    countTimer = null;
    refreshCount();
  }, COUNT_REFRESH_MS);
}

function updateLoadMore() {
  loadMoreButton.hidden = nextCursor == null;
  loadMoreButton.disabled = pageRequest !== null;
}

// -- REST --------------------------------------------------------------------

async function loadPage(cursor) {
  pageRequest?.abort();
  const request = new AbortController();
  pageRequest = request;
  const loadingGeneration = generation;
  galleryList.setAttribute("aria-busy", "true");
  updateLoadMore();
  try {
    const page = await listExecutions(filters, cursor, { signal: request.signal });
    if (loadingGeneration !== generation) return;
    // The server applied the filters; merging keeps fresher live knowledge.
    gallery.showAll(page.items.map((summary) => store.upsert(summary)));
    nextCursor = page.next_cursor ?? null;
    errors.clear();
  } catch (error) {
    if (error.name !== "AbortError") errors.show(t("errors.load_executions", { reason: describeError(error) }));
  } finally {
    if (pageRequest === request) {
      pageRequest = null;
      galleryList.setAttribute("aria-busy", "false");
    }
    updateLoadMore();
    updateCounts();
  }
}

/** Start over from the first page (filters changed, `reset`, or an unresumable reconnect). */
function reload() {
  generation += 1;
  store.clear();
  gallery.clear();
  nextCursor = null;
  refreshCount();
  return loadPage(null);
}

async function loadCameras() {
  try {
    fillCameras(form, await listCameras());
  } catch (error) {
    errors.show(t("errors.load_cameras", { reason: describeError(error) }));
  }
}

async function loadLocations() {
  try {
    fillLocations(form, await listLocations());
  } catch (error) {
    errors.show(t("errors.load_locations", { reason: describeError(error) }));
  }
}

/**
 * An event names an execution the gallery does not have: fetch it by id, apply the
 * event on top (the event may be newer than the row we read) and show it if it passes
 * the filters.
 */
async function fetchAndShow(id, applyEvent) {
  const fetchGeneration = generation;
  let request = fetches.get(id);
  if (!request) {
    request = getExecutionRetrying(id).finally(() => fetches.delete(id));
    fetches.set(id, request);
  }
  let summary;
  try {
    summary = await request;
  } catch (error) {
    errors.show(t("errors.fetch_execution", { id: String(id), reason: describeError(error) }));
    return;
  }
  if (summary == null || fetchGeneration !== generation) return;
  const known = store.has(id);
  const next = applyEvent(known ? store.upsert(summary) : summary);
  if (!known && !matchesFilters(next, filters)) return;
  store.put(next);
  render(next, { highlight: !known });
  if (!known) announcer.newExecutions(1);
}

/** Open the detail of an execution, whether or not the gallery shows it. */
async function openDetail(id, known = null) {
  let state = store.get(id) ?? known;
  if (!state) {
    try {
      state = await getExecution(id);
    } catch (error) {
      errors.show(t("errors.fetch_execution", { id: String(id), reason: describeError(error) }));
      return;
    }
    if (!state) {
      errors.show(t("errors.fetch_execution", { id: String(id), reason: t("errors.not_found") }));
      showInUrl(null);
      return;
    }
  }
  detail.open(state); // reads the fresh detail (detections) itself
}

/** Triage states (from `execution:updated` or our own action's answer) onto the screen. */
function applyTriageStates(states) {
  if (states?.length) scheduleCount("triage");
  for (const triage of states ?? []) {
    const state = store.applyTriage(triage);
    if (state) {
      render(state);
    } else {
      if (detail.currentId === triage.execution_id) {
        detail.refresh({ id: triage.execution_id, ...withoutId(triage) });
      }
      // Not shown: it may pass the filters now (e.g. "only false positives").
      const { execution_id: id } = triage;
      if (filters.false_positive != null) fetchAndShow(id, (base) => triagedState(base, triage));
    }
    alerts.applyTriage(triage);
  }
}

function withoutId(triage) {
  const { execution_id: _id, ...fields } = triage;
  return fields;
}

// -- live events -------------------------------------------------------------

function onBatch({ executions }) {
  let added = 0;
  for (const summary of executions ?? []) {
    alerts.consider(summary); // every camera's alerts, whatever the gallery's filters
    scheduleCount("new", summary);
    const known = store.has(summary.id);
    if (!known && !matchesFilters(summary, filters)) continue;
    render(store.upsert(summary), { highlight: !known });
    if (!known) added += 1;
  }
  announcer.newExecutions(added);
}

// A completion or failure can move an execution into or out of the filtered set,
// shown or not (a card that appears through fetchAndShow came from no batch).
function onComplete(event) {
  scheduleCount("complete");
  const state = store.applyComplete(event);
  if (state) render(state);
  else fetchAndShow(event.execution_id, (base) => completedState(base, event));
}

function onFailed(event) {
  scheduleCount("failed");
  const state = store.applyFailed(event);
  if (state) {
    render(state);
    announcer.failed(event.execution_id);
  } else {
    fetchAndShow(event.execution_id, (base) => failedState(base, event));
  }
}

// -- start -------------------------------------------------------------------

let live = null;

/** What the gateway filters the live stream by; the rest is checked here (matchesFilters). */
function streamFilters({ camera, alert_levels }) {
  return { camera, alert_levels };
}

// A filter change is a new entry in the history: the URL reproduces the view.
form.addEventListener("change", (event) => {
  if (event.target.name === "range") showCustomRange(form);
  filters = readForm(form);
  const search = filtersToSearch(filters);
  if (search !== window.location.search) {
    window.history.pushState(null, "", `${window.location.pathname}${search}`);
  }
  live?.setFilters(streamFilters(filters));
  reload();
});
window.addEventListener("popstate", () => {
  filters = filtersFromUrl();
  writeForm(form, filters);
  live?.setFilters(streamFilters(filters));
  reload();
});
form.addEventListener("submit", (event) => event.preventDefault());
loadMoreButton.addEventListener("click", () => {
  if (nextCursor != null) loadPage(nextCursor);
});

function showUser(session) {
  const box = document.getElementById("user-box");
  const user = session?.signed_in && session.mode !== "none" ? session.user : null;
  box.hidden = user == null;
  if (user) box.querySelector(".user-name").textContent = t("user.signed_in_as", { name: user.name });
  // Operator controls (`.operator-only`) are hidden by style.css unless this says so;
  // no-auth mode signs everyone in as an anonymous admin, so they show there.
  const operate = canOperate(session?.signed_in ? session.user : null);
  document.body.dataset.canOperate = String(operate);
  if (!operate) selection.clear();
}

async function main() {
  translatePage();
  bindOperatorName(document.getElementById("operator-name"));
  bindLanguageSwitch(document.getElementById("language"));
  writeForm(form, filters);
  updateCounts();
  new ExportControl(document.querySelector(".export"), () => filters, errors);
  onSessionChange(showUser);
  document
    .querySelector('#user-box [data-action="sign-out"]')
    .addEventListener("click", () => signOut());
  // Signed in first (the dialog asks when needed), so the stream opens authorised.
  await ensureSignedIn();
  await loadCameras();
  await loadLocations();

  let firstConnection;
  const connected = new Promise((resolve) => {
    firstConnection = resolve;
  });
  live = new LiveConnection({
    handlers: {
      "execution:batch": onBatch,
      "etl:stage2:complete": onComplete,
      "etl:stage2:failed": onFailed,
      "execution:updated": (event) => applyTriageStates(event.executions),
      reset: () => reload(),
      resync: () => reload(),
      beforeReopen: () => listCameras(),
      sessionExpired: () => signIn("expired"),
    },
    onStatus: (status) => {
      badge.show(status);
      if (status.state === "live") firstConnection();
    },
  });
  live.start(streamFilters(filters));
  // Subscribed before the first page is read, so nothing falls between the two.
  await Promise.race([
    connected,
    new Promise((resolve) => setTimeout(resolve, FIRST_CONNECTION_WAIT_MS)),
  ]);
  await reload();
  const linked = executionInUrl();
  if (linked != null) openDetail(linked);
  try {
    await alerts.load();
  } catch (error) {
    errors.show(t("errors.load_alerts", { reason: describeError(error) }));
  }
}

main();
