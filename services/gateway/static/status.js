// Small status surfaces: the connection badge, the error banner, screen-reader announcements.

import { t } from "./i18n.js";

const CONNECTION_STATES = ["connecting", "live", "reconnecting", "offline", "expired"];

export class ConnectionBadge {
  #element;
  #label;

  constructor(element) {
    this.#element = element;
    this.#label = element.querySelector(".connection-label");
  }

  /** The attributes also let tests see the stream's position and resumes. */
  show({ state, lastEventId, resumedFrom }) {
    const element = this.#element;
    element.dataset.state = state;
    element.dataset.lastEventId = lastEventId;
    element.dataset.resumedFrom = resumedFrom;
    const label = CONNECTION_STATES.includes(state) ? t(`connection.${state}`) : state;
    if (this.#label.textContent !== label) this.#label.textContent = label;
  }
}

export class ErrorBanner {
  #element;

  constructor(element) {
    this.#element = element;
  }

  show(message) {
    this.#element.textContent = message;
    this.#element.hidden = false;
  }

  clear() {
    this.#element.hidden = true;
    this.#element.textContent = "";
  }
}

/** Polite announcements, gathered for a moment so a burst of events is one sentence. */
export class Announcer {
  #element;
  #newCount = 0;
  #failed = [];
  #timer = null;

  constructor(element) {
    this.#element = element;
  }

  newExecutions(count) {
    if (count <= 0) return;
    this.#newCount += count;
    this.#schedule();
  }

  failed(id) {
    this.#failed.push(id);
    this.#schedule();
  }

  #schedule() {
    if (this.#timer !== null) return;
    this.#timer = setTimeout(() => this.#flush(), 1000);
  }

  #flush() {
    const parts = [];
    if (this.#newCount > 0) parts.push(t("announce.new", { count: this.#newCount }));
    if (this.#failed.length === 1) parts.push(t("announce.failed_one", { id: String(this.#failed[0]) }));
    if (this.#failed.length > 1) {
      parts.push(t("announce.failed_many", { count: this.#failed.length }));
    }
    this.#element.textContent = parts.join(" ");
    this.#newCount = 0;
    this.#failed = [];
    this.#timer = null;
  }
}
