// Alerts that get attention: a persistent banner for every high or critical detection
// until someone acknowledges it — on any screen, since acknowledgements arrive through
// the bus as `execution:updated`. One banner entry per camera: alerts of a camera that
// already has an open entry join it, and within the cooldown they raise no new sound or
// notification, so one burning hillside does not bury everything else.

import { describeError, thumbnailUrl } from "./api.js";
import { alertLabel, formatTime } from "./format.js";
import { t } from "./i18n.js";
import { askForOperatorName, operatorName } from "./operator.js";
import { acknowledge, listOpenAlerts } from "./triage-api.js";

export const ALERTING = new Set(["high", "critical"]);
export const COOLDOWN_MS = 5 * 60 * 1000;
const LOOK_BACK_MS = 24 * 3600 * 1000;
const SOUND_KEY = "smokesignal.alert-sound";

export function isOpenAlert(state) {
  return (
    state.processing_stage === "stage2" &&
    ALERTING.has(state.alert_level) &&
    !state.acknowledged_at &&
    !state.false_positive
  );
}

export class AlertCenter {
  #region;
  #list;
  #byCamera = new Map(); // camera → {alerts: Map id → state, element, notifiedAt}
  #onOpen;
  #soundBox;
  #notifyButton;
  #audio = null;
  cooldownMs = COOLDOWN_MS;

  constructor(region, { soundBox, notifyButton, onOpen }) {
    this.#region = region;
    this.#list = region.querySelector(".alert-list");
    this.#onOpen = onOpen;
    this.#soundBox = soundBox;
    this.#notifyButton = notifyButton;
    try {
      soundBox.checked = window.localStorage.getItem(SOUND_KEY) === "on";
    } catch {
      // storage disabled: sound starts off
    }
    soundBox.addEventListener("change", () => {
      try {
        window.localStorage.setItem(SOUND_KEY, soundBox.checked ? "on" : "off");
      } catch {
        // the choice lasts for this page
      }
      if (soundBox.checked) this.#unlockAudio();
    });
    // Permission can only be asked on a user gesture: this click.
    notifyButton.addEventListener("click", async () => {
      if (!("Notification" in window)) return;
      await Notification.requestPermission();
      this.#renderNotifyButton();
    });
    this.#renderNotifyButton();
    this.#list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const camera = button.closest("[data-camera]")?.dataset.camera;
      const entry = camera == null ? null : this.#byCamera.get(camera);
      if (!entry) return;
      if (button.dataset.action === "alert-ack") this.#acknowledge(camera, entry, button);
      if (button.dataset.action === "alert-open") this.#onOpen(latest(entry));
    });
  }

  get size() {
    let count = 0;
    for (const entry of this.#byCamera.values()) count += entry.alerts.size;
    return count;
  }

  /** Load what is open now (no sound: these are not new to anyone). */
  async load() {
    const page = await listOpenAlerts(new Date(Date.now() - LOOK_BACK_MS));
    for (const state of (page.items ?? []).slice().reverse()) this.consider(state, { quiet: true });
  }

  /** Any execution state seen by the page: opens, updates or closes its alert. */
  consider(state, { quiet = false } = {}) {
    if (!state?.camera_id) return;
    const entry = this.#byCamera.get(state.camera_id);
    if (!isOpenAlert(state)) {
      if (entry?.alerts.delete(state.id)) this.#renderEntry(state.camera_id, entry);
      return;
    }
    if (entry?.alerts.has(state.id)) {
      entry.alerts.set(state.id, { ...entry.alerts.get(state.id), ...state });
      this.#renderEntry(state.camera_id, entry);
      return;
    }
    const current = entry ?? { alerts: new Map(), element: null, notifiedAt: 0 };
    current.alerts.set(state.id, state);
    this.#byCamera.set(state.camera_id, current);
    this.#renderEntry(state.camera_id, current);
    const now = Date.now();
    if (!quiet && now - current.notifiedAt >= this.cooldownMs) {
      current.notifiedAt = now;
      this.#attention(state);
    }
  }

  /** Triage states from `execution:updated` (acknowledged or marked: the alert closes). */
  applyTriage(triage) {
    for (const entry of [...this.#byCamera.values()]) {
      const alert = entry.alerts.get(triage.execution_id);
      if (alert) this.consider({ ...alert, ...triage });
    }
  }

  async #acknowledge(camera, entry, button) {
    button.disabled = true;
    try {
      const result = await acknowledge([...entry.alerts.keys()], { actor: operatorName() });
      for (const triage of result.updated ?? []) this.applyTriage(triage);
      // Already acknowledged elsewhere: close those too.
      for (const id of result.unchanged ?? []) {
        const alert = entry.alerts.get(id);
        if (alert) this.consider({ ...alert, acknowledged_at: alert.acknowledged_at ?? "?" });
      }
    } catch (error) {
      if (error.status === 422 && !operatorName()) askForOperatorName();
      entry.element?.querySelector(".alert-error")?.replaceChildren(describeError(error));
    } finally {
      button.disabled = false;
    }
  }

  #renderEntry(camera, entry) {
    if (entry.alerts.size === 0) {
      entry.element?.remove();
      this.#byCamera.delete(camera);
      this.#region.hidden = this.#byCamera.size === 0;
      return;
    }
    if (!entry.element) {
      entry.element = document.createElement("li");
      entry.element.className = "alert-entry";
      entry.element.dataset.camera = camera;
      entry.element.innerHTML = `
        <img class="alert-thumb" alt="" hidden>
        <div class="alert-text">
          <strong class="alert-title"></strong>
          <span class="alert-meta"></span>
          <span class="alert-error" role="status"></span>
        </div>
        <div class="alert-buttons">
          <button type="button" class="button" data-action="alert-open"></button>
          <button type="button" class="button button-strong operator-only" data-action="alert-ack"></button>
        </div>`;
      this.#list.prepend(entry.element);
    }
    const newest = latest(entry);
    const element = entry.element;
    element.dataset.alert = newest.alert_level;
    element.dataset.ids = [...entry.alerts.keys()].sort((a, b) => a - b).join(",");
    element.querySelector(".alert-title").textContent = t("alerts.title", {
      level: alertLabel(newest.alert_level),
      camera,
    });
    element.querySelector(".alert-meta").textContent = t("alerts.meta", {
      time: formatTime(newest.captured_at ?? newest.started_at),
      location: newest.location ?? "—",
      count: entry.alerts.size,
    });
    const thumb = element.querySelector(".alert-thumb");
    if (newest.has_image) {
      const src = thumbnailUrl(newest.id);
      if (thumb.getAttribute("src") !== src) thumb.src = src;
      thumb.hidden = false;
    } else {
      thumb.hidden = true;
    }
    element.querySelector('[data-action="alert-open"]').textContent = t("alerts.open");
    element.querySelector('[data-action="alert-ack"]').textContent = t("alerts.acknowledge", {
      count: entry.alerts.size,
    });
    this.#region.hidden = false;
  }

  #attention(state) {
    if (this.#soundBox.checked) this.#beep();
    if (
      document.visibilityState === "hidden" &&
      "Notification" in window &&
      Notification.permission === "granted"
    ) {
      const notification = new Notification(
        t("alerts.title", { level: alertLabel(state.alert_level), camera: state.camera_id }),
        {
          body: t("alerts.notification_body", {
            time: formatTime(state.captured_at ?? state.started_at),
            location: state.location ?? "—",
          }),
          tag: `smokesignal-${state.camera_id}`,
          icon: state.has_image ? thumbnailUrl(state.id) : undefined,
        },
      );
      notification.onclick = () => {
        window.focus();
        this.#onOpen(state);
      };
      // Tests (and curious users) can see what the browser actually showed.
      notification.onshow = () => {
        document.documentElement.dataset.notificationShown = String(state.id);
      };
    }
  }

  #unlockAudio() {
    // An AudioContext may only start after a user gesture: create it on the opt-in click.
    if (!this.#audio && "AudioContext" in window) this.#audio = new AudioContext();
    this.#audio?.resume?.();
  }

  #beep() {
    this.#unlockAudio();
    const audio = this.#audio;
    if (!audio) return;
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.6);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start();
    oscillator.stop(audio.currentTime + 0.6);
  }

  #renderNotifyButton() {
    const button = this.#notifyButton;
    if (!("Notification" in window)) {
      button.hidden = true;
      return;
    }
    const permission = Notification.permission;
    button.dataset.permission = permission;
    button.textContent =
      permission === "granted"
        ? t("alerts.notify_on")
        : permission === "denied"
          ? t("alerts.notify_blocked")
          : t("alerts.notify");
    button.disabled = permission !== "default";
  }
}

function latest(entry) {
  let newest = null;
  for (const state of entry.alerts.values()) if (!newest || state.id > newest.id) newest = state;
  return newest;
}
