// The detail view: a modal <dialog> with the full image (detection boxes, zoom, pan),
// every result field, triage (false positive, acknowledgement, history), and stepping
// through the gallery's list or through the same camera's frames in time order.
// Keyboard first: every action has a key (listed in the dialog).

import { ALERTING } from "./alerts.js";
import { describeError, imageUrl } from "./api.js";
import {
  alertText,
  attemptsText,
  formatFullTime,
  formatTime,
  milliseconds,
  percent,
  yesNo,
} from "./format.js";
import { formatNumber, t } from "./i18n.js";
import { askForOperatorName, operatorName } from "./operator.js";
import { CameraSequence, HoldToPlay } from "./sequence.js";
import { acknowledge, getAudit, setFalsePositive } from "./triage-api.js";
import { ImageViewer } from "./viewer.js";

export class DetailView {
  #dialog;
  #state = null;
  #viewer;
  #sequence = new CameraSequence();
  #player;
  #hooks;
  #busy = false;

  /**
   * hooks: listNeighbour(id, offset) → state | null (the gallery's order);
   *        fetchDetail(id) → the fresh detail; onShow(state | null) when the open
   *        execution changes (null: closed); onTriage(triageStates) after an action.
   */
  constructor(dialog, hooks) {
    this.#dialog = dialog;
    this.#hooks = hooks;
    this.#viewer = new ImageViewer(dialog.querySelector(".viewer"));
    this.#viewer.onChange = () => this.#renderTools();
    this.#player = new HoldToPlay(
      () => this.stepFrame("next"),
      (fps) => {
        dialog.dataset.playing = String(fps);
      },
    );
    dialog.querySelector('[data-action="close"]').addEventListener("click", () => dialog.close());
    // A click on the backdrop (outside the content box) closes it too.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener("close", () => {
      this.#player.stop();
      this.#state = null;
      this.#viewer.clear();
      this.#hooks.onShow?.(null);
    });
    dialog.addEventListener("keydown", (event) => this.#onKeyDown(event));
    dialog.addEventListener("keyup", (event) => {
      if (event.key === " ") this.#player.stop();
    });
    this.#bindButtons();
    // The history is read when shown, not on every frame stepped through.
    dialog.querySelector(".audit").addEventListener("toggle", (event) => {
      if (event.target.open && this.#state) this.#loadAudit(this.#state.id);
    });
  }

  get currentId() {
    return this.#state?.id ?? null;
  }

  get viewer() {
    return this.#viewer;
  }

  /** Open (or switch to) an execution from outside: the camera sequence starts here. */
  open(state) {
    this.#sequence.reset(state);
    this.#show(state, { resetZoom: true });
    if (!this.#dialog.open) this.#dialog.showModal();
    this.#sequence.prefetch("next");
    this.#sequence.prefetch("previous");
    this.#loadFresh(state.id);
  }

  /** Re-render if `state` is the execution on screen (live updates reach the detail too). */
  refresh(state) {
    this.#sequence.refresh(state);
    if (state.id === this.currentId) this.#show({ ...this.#state, ...state });
  }

  /** Step through the gallery's list (offset −1 / +1). */
  stepList(offset) {
    if (this.#state == null) return;
    const neighbour = this.#hooks.listNeighbour?.(this.#state.id, offset);
    if (neighbour) this.open(neighbour);
  }

  /** Step through this camera's frames in time order; false at the end. */
  async stepFrame(direction) {
    if (this.#state == null || this.#busy) return this.#state != null;
    this.#busy = true;
    try {
      const frame = await this.#sequence.step(direction);
      if (!frame || !this.#dialog.open) return false;
      this.#show(frame);
      return true;
    } catch (error) {
      this.#message(describeError(error));
      return false;
    } finally {
      this.#busy = false;
    }
  }

  async #loadFresh(id) {
    try {
      const fresh = await this.#hooks.fetchDetail?.(id);
      if (fresh && this.currentId === id) this.#show({ ...this.#state, ...fresh });
    } catch {
      // keep showing what we have
    }
  }

  #show(state, { resetZoom = false } = {}) {
    const changed = this.#state?.id !== state.id;
    this.#state = state;
    if (resetZoom) this.#viewer.reset();
    this.#render(state);
    if (changed) {
      this.#hooks.onShow?.(state);
      this.#dialog.querySelector(".audit-list").replaceChildren();
      if (this.#dialog.querySelector(".audit").open) this.#loadAudit(state.id);
      this.#message("");
    }
  }

  #render(state) {
    const dialog = this.#dialog;
    dialog.dataset.executionId = String(state.id);
    dialog.dataset.stage = state.processing_stage;
    dialog.dataset.alert = state.processing_stage === "stage2" ? (state.alert_level ?? "") : "";
    dialog.dataset.falsePositive = String(Boolean(state.false_positive));
    dialog.querySelector("#detail-title").textContent = t("detail.title", {
      id: String(state.id),
      camera: state.camera_id,
    });
    // The sequence's own key (capture time, else run start): steps read in order.
    const takenAt = state.captured_at ?? state.started_at;
    dialog.querySelector(".detail-position").textContent = formatTime(takenAt);

    const viewport = dialog.querySelector(".viewer");
    const img = dialog.querySelector(".viewer-image");
    const noImage = dialog.querySelector(".detail-noimage");
    const download = dialog.querySelector('[data-action="download"]');
    if (state.has_image) {
      const src = imageUrl(state.id);
      img.alt = t("detail.image_alt", {
        camera: state.camera_id,
        time: formatTime(takenAt),
      });
      const size =
        state.image_width && state.image_height
          ? { width: state.image_width, height: state.image_height }
          : null;
      this.#viewer.show(src, state.detections ?? [], size);
      viewport.hidden = false;
      noImage.hidden = true;
      download.href = src;
      download.setAttribute("download", `execution-${state.id}.jpg`);
      download.removeAttribute("aria-disabled");
    } else {
      this.#viewer.clear();
      viewport.hidden = true;
      noImage.hidden = false;
      noImage.textContent =
        state.processing_stage === "stage1" ? t("image.analysing") : t("image.none");
      download.removeAttribute("href");
      download.setAttribute("aria-disabled", "true");
    }

    this.#renderTriage(state);
    this.#renderFields(state);
    this.#renderTools();
  }

  #renderTriage(state) {
    const panel = this.#dialog.querySelector(".triage-panel");
    const status = panel.querySelector(".triage-status");
    const parts = [];
    if (state.false_positive) {
      parts.push(
        t("triage.marked_by", {
          who: state.false_positive_by ?? "—",
          time: formatFullTime(state.false_positive_at),
        }),
      );
      if (state.false_positive_reason) {
        parts.push(t("triage.reason_was", { reason: state.false_positive_reason }));
      }
    } else {
      parts.push(t("triage.not_marked"));
    }
    if (state.acknowledged_at) {
      parts.push(
        t("triage.acknowledged_by", {
          who: state.acknowledged_by ?? "—",
          time: formatFullTime(state.acknowledged_at),
        }),
      );
    }
    status.textContent = parts.join(" ");
    const toggle = panel.querySelector('[data-action="toggle-fp"]');
    toggle.textContent = state.false_positive ? t("triage.unmark") : t("triage.mark");
    const ack = panel.querySelector('[data-action="acknowledge"]');
    ack.hidden = !(ALERTING.has(state.alert_level) && !state.acknowledged_at);
  }

  #renderFields(state) {
    const rows = [
      [t("field.alert_level"), alertText(state)],
      [t("field.smoke"), yesNo(state.has_smoke)],
      [t("field.fire"), yesNo(state.has_fire)],
      [t("field.detections"), formatNumber(state.detection_count)],
      [t("field.confidence"), percent(state.confidence)],
      [t("field.telegram_sent"), yesNo(state.telegram_sent)],
      [t("field.camera"), state.camera_id],
      [t("field.camera_type"), state.camera_type ?? "—"],
      [t("field.location"), state.location ?? "—"],
      [t("field.workflow"), state.workflow_id],
      [t("field.workflow_status"), state.status],
      [t("field.captured"), formatFullTime(state.captured_at)],
      [t("field.started"), formatFullTime(state.started_at)],
      [t("field.stopped"), formatFullTime(state.stopped_at)],
      [t("field.stage2_finished"), formatFullTime(state.extracted_at)],
    ];
    // n8n-sourced runs: which alert went out, and from which camera node.
    if (state.telegram_message_id != null) {
      rows.push([t("field.telegram_message"), state.telegram_message_id]);
    }
    if (state.device_id && state.device_id !== state.camera_id) {
      rows.push([t("field.device"), state.device_id]);
    }
    if (state.model_version) rows.push([t("field.model_version"), state.model_version]);
    if (state.processing_time_ms != null) {
      rows.push([t("field.stage2_time"), milliseconds(state.processing_time_ms)]);
    }
    if (state.processing_stage === "failed") {
      rows.push([t("field.error"), state.stage2_error ?? t("stage.failed_default")]);
      rows.push([t("field.attempts"), attemptsText(state.retry_count ?? 0)]);
    }
    const list = this.#dialog.querySelector(".detail-fields");
    list.replaceChildren(
      ...rows.flatMap(([name, value]) => {
        const term = document.createElement("dt");
        term.textContent = name;
        const definition = document.createElement("dd");
        definition.textContent = String(value);
        return [term, definition];
      }),
    );
  }

  #renderTools() {
    const dialog = this.#dialog;
    dialog.querySelector(".zoom-level").textContent = formatNumber(this.#viewer.zoom, {
      style: "percent",
      maximumFractionDigits: 0,
    });
    dialog
      .querySelector('[data-action="boxes"]')
      .setAttribute("aria-pressed", String(this.#viewer.boxesShown));
  }

  #refreshAudit(id) {
    if (this.#dialog.querySelector(".audit").open) this.#loadAudit(id);
  }

  async #loadAudit(id) {
    const list = this.#dialog.querySelector(".audit-list");
    list.replaceChildren();
    try {
      const trail = await getAudit(id);
      if (this.currentId !== id) return;
      list.replaceChildren(
        ...(trail.entries ?? []).map((entry) => {
          const item = document.createElement("li");
          item.textContent = t(`audit.${entry.action}`, {
            who: entry.actor,
            time: formatFullTime(entry.at),
            reason: entry.reason ?? "",
          });
          return item;
        }),
      );
    } catch {
      // the history is a convenience; the status line says what matters
    }
  }

  #message(text) {
    this.#dialog.querySelector(".triage-message").textContent = text;
  }

  async #toggleFalsePositive() {
    const state = this.#state;
    if (!state) return;
    const reasonInput = this.#dialog.querySelector('.triage-reason input[name="reason"]');
    try {
      const result = await setFalsePositive([state.id], {
        falsePositive: !state.false_positive,
        reason: reasonInput.value.trim() || null,
        actor: operatorName(),
      });
      reasonInput.value = "";
      this.#hooks.onTriage?.(result.updated ?? []);
      this.#message(state.false_positive ? t("triage.unmarked_done") : t("triage.marked_done"));
      this.#refreshAudit(state.id);
    } catch (error) {
      if (error.status === 422 && !operatorName()) askForOperatorName();
      this.#message(describeError(error));
    }
  }

  async #acknowledge() {
    const state = this.#state;
    if (!state) return;
    try {
      const result = await acknowledge([state.id], { actor: operatorName() });
      this.#hooks.onTriage?.(result.updated ?? []);
      this.#refreshAudit(state.id);
    } catch (error) {
      if (error.status === 422 && !operatorName()) askForOperatorName();
      this.#message(describeError(error));
    }
  }

  async #copyLink() {
    const url = new URL(window.location.href);
    try {
      await navigator.clipboard.writeText(url.href);
      this.#message(t("detail.link_copied"));
    } catch {
      // Clipboard refused (no permission, insecure origin): show the link to copy by hand.
      this.#message(url.href);
    }
  }

  #bindButtons() {
    const actions = {
      "list-prev": () => this.stepList(-1),
      "list-next": () => this.stepList(1),
      "frame-prev": () => this.stepFrame("previous"),
      "frame-next": () => this.stepFrame("next"),
      "zoom-in": () => this.#viewer.zoomIn(),
      "zoom-out": () => this.#viewer.zoomOut(),
      "zoom-reset": () => this.#viewer.reset(),
      boxes: () => this.#viewer.toggleBoxes(),
      "copy-link": () => this.#copyLink(),
      "toggle-fp": () => this.#toggleFalsePositive(),
      acknowledge: () => this.#acknowledge(),
    };
    this.#dialog.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button && actions[button.dataset.action]) actions[button.dataset.action]();
    });
    // Hold-to-play buttons play while pressed (mouse, touch or pen).
    for (const [action, fps] of [
      ["play-3", 3],
      ["play-10", 10],
    ]) {
      const button = this.#dialog.querySelector(`[data-action="${action}"]`);
      button.addEventListener("pointerdown", (event) => {
        button.setPointerCapture?.(event.pointerId);
        this.#player.start(fps);
      });
      for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
        button.addEventListener(type, () => this.#player.stop());
      }
    }
  }

  #onKeyDown(event) {
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement) return;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key;
    let handled = true;
    if (event.shiftKey && this.#viewer.panKey(key)) {
      // Shift + arrows pan the zoomed image
    } else if (key === "ArrowLeft") this.stepList(-1);
    else if (key === "ArrowRight") this.stepList(1);
    else if (key === "ArrowUp") this.stepFrame("previous");
    else if (key === "ArrowDown") this.stepFrame("next");
    else if (key === "+" || key === "=") this.#viewer.zoomIn();
    else if (key === "-" || key === "_") this.#viewer.zoomOut();
    else if (key === "0") this.#viewer.reset();
    else if (key === " ") {
      if (!event.repeat) this.#player.start(event.shiftKey ? 10 : 3);
    } else if (key === "b" || key === "B") this.#viewer.toggleBoxes();
    else if ((key === "f" || key === "F") && document.body.dataset.canOperate === "true")
      this.#toggleFalsePositive();
    else handled = false;
    if (handled) event.preventDefault();
  }
}
