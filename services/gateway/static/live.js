// The live event stream: one EventSource on /api/events, kept alive for the page's life.
//
// On a dropped connection the browser reconnects by itself and sends Last-Event-ID, so
// the gateway replays what was missed. Only when the browser gives up (an HTTP error
// closes the stream) or the stream goes silent do we open a new EventSource ourselves,
// passing the last id as `last_event_id`. If a reconnect is not confirmed as a resume
// (`connection.resumed_from` empty), the page may have missed events and must resync.

import { eventsUrl } from "./api.js";

const DATA_EVENTS = [
  "execution:batch",
  "etl:stage2:complete",
  "etl:stage2:failed",
  "execution:updated",
];
const MAX_REOPEN_DELAY_MS = 30_000;
// A stream is presumed dead after this many heartbeat intervals of silence (never sooner
// than MIN_SILENCE_MS). The interval is measured, so any gateway setting works.
const SILENT_HEARTBEATS = 3;
const MIN_SILENCE_MS = 30_000;

export class LiveConnection {
  #source = null;
  #handlers;
  #onStatus;
  #heartbeatGapMs = null; // measured between the last two heartbeats
  #lastHeartbeatAt = null;
  #lastEventId = "";
  #resumedFrom = "";
  #connectedBefore = false;
  #reopenDelayMs = 1000;
  #reopenTimer = null;
  #watchdog = null;
  #state = "connecting";
  #filters = {};

  /**
   * handlers: {"execution:batch", "etl:stage2:complete", "etl:stage2:failed", reset, resync,
   *            beforeReopen, sessionExpired}; onStatus({state, lastEventId, resumedFrom}).
   */
  constructor({ handlers, onStatus }) {
    this.#handlers = handlers;
    this.#onStatus = onStatus;
  }

  start(filters = {}) {
    this.#filters = filters;
    this.#open();
  }

  /**
   * Follow other filters (camera, alert levels): a new stream, resumed from the last
   * id, so nothing that matches the new filters falls between the two.
   */
  setFilters(filters) {
    this.#filters = filters;
    if (this.#source === null) return;
    clearTimeout(this.#reopenTimer);
    this.#source.close();
    this.#open();
  }

  #open() {
    const source = new EventSource(eventsUrl(this.#lastEventId, this.#filters));
    this.#source = source;
    this.#status(this.#connectedBefore ? "reconnecting" : "connecting");
    this.#armWatchdog();

    source.addEventListener("connection", (event) => this.#onConnection(source, event));
    for (const name of DATA_EVENTS) {
      source.addEventListener(name, (event) => this.#onData(source, name, event));
    }
    source.addEventListener("heartbeat", () => this.#onHeartbeat(source));
    source.addEventListener("reset", (event) => {
      if (source !== this.#source) return;
      this.#track(event);
      this.#handlers.reset?.(parse(event));
    });
    source.addEventListener("session:expired", () => this.#onSessionExpired(source));
    source.addEventListener("error", () => this.#onError(source));
  }

  /**
   * The gateway ended the stream because the session expired. Stop (the browser must
   * not reconnect unauthorised), let the page sign in again, then resume from the last
   * event id: the page keeps everything it shows, and misses nothing.
   */
  async #onSessionExpired(source) {
    if (source !== this.#source) return;
    source.close();
    clearTimeout(this.#watchdog);
    clearTimeout(this.#reopenTimer);
    this.#status("expired");
    try {
      await this.#handlers.sessionExpired?.();
    } finally {
      this.#open();
    }
  }

  #onConnection(source, event) {
    if (source !== this.#source) return;
    this.#track(event);
    const data = parse(event) ?? {};
    this.#resumedFrom = data.resumed_from == null ? "" : String(data.resumed_from);
    const reconnect = this.#connectedBefore;
    this.#connectedBefore = true;
    this.#lastHeartbeatAt = null; // a gap must not span the outage
    this.#reopenDelayMs = 1000;
    this.#status("live");
    if (reconnect && !this.#resumedFrom) this.#handlers.resync?.();
  }

  #onHeartbeat(source) {
    if (source !== this.#source) return;
    const now = performance.now();
    if (this.#lastHeartbeatAt !== null) this.#heartbeatGapMs = now - this.#lastHeartbeatAt;
    this.#lastHeartbeatAt = now;
    this.#armWatchdog();
  }

  #onData(source, name, event) {
    if (source !== this.#source) return;
    this.#track(event);
    const data = parse(event);
    if (data == null) return;
    try {
      this.#handlers[name]?.(data);
    } catch (error) {
      console.error(`smokesignal: handling ${name} failed`, error, data);
    }
  }

  #onError(source) {
    if (source !== this.#source) return;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error such as 401 or 503): reopen ourselves.
      this.#status("offline");
      this.#scheduleReopen();
    } else {
      this.#status("reconnecting"); // the browser retries and resends Last-Event-ID
    }
  }

  #scheduleReopen() {
    clearTimeout(this.#reopenTimer);
    this.#source?.close();
    const delay = this.#reopenDelayMs;
    this.#reopenDelayMs = Math.min(delay * 2, MAX_REOPEN_DELAY_MS);
    this.#reopenTimer = setTimeout(async () => {
      try {
        await this.#handlers.beforeReopen?.(); // e.g. a REST call that asks for a new token
      } catch {
        // the stream itself will tell whether the gateway is back
      }
      this.#open();
    }, delay);
  }

  /**
   * A connection can die without the browser noticing (a laptop sleeps, a NAT forgets
   * it): once the heartbeat rhythm is known, long silence replaces the stream.
   */
  #armWatchdog() {
    clearTimeout(this.#watchdog);
    if (this.#heartbeatGapMs === null) return;
    const limit = Math.max(MIN_SILENCE_MS, SILENT_HEARTBEATS * this.#heartbeatGapMs);
    this.#watchdog = setTimeout(() => {
      this.#status("reconnecting");
      this.#scheduleReopen();
    }, limit);
  }

  #track(event) {
    this.#armWatchdog();
    if (event.lastEventId && event.lastEventId !== this.#lastEventId) {
      this.#lastEventId = event.lastEventId;
      this.#status(this.#state);
    }
  }

  #status(state) {
    this.#state = state;
    this.#onStatus({ state, lastEventId: this.#lastEventId, resumedFrom: this.#resumedFrom });
  }
}

function parse(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    console.error("smokesignal: unreadable event data", event.type, event.data);
    return null;
  }
}
