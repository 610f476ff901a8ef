// The detail view: a modal <dialog> with the full image and every result field.

import { imageUrl } from "./api.js";
import { alertText, attemptsText, formatFullTime, formatTime, percent, yesNo } from "./format.js";

export class DetailView {
  #dialog;
  #currentId = null;

  constructor(dialog) {
    this.#dialog = dialog;
    dialog.querySelector('[data-action="close"]').addEventListener("click", () => dialog.close());
    // A click on the backdrop (outside the content box) closes it too.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener("close", () => {
      this.#currentId = null;
    });
  }

  get currentId() {
    return this.#currentId;
  }

  open(state) {
    this.#currentId = state.id;
    this.render(state);
    if (!this.#dialog.open) this.#dialog.showModal();
  }

  /** Re-render if `state` is the execution on screen (live updates reach the detail too). */
  refresh(state) {
    if (state.id === this.#currentId) this.render(state);
  }

  render(state) {
    const dialog = this.#dialog;
    dialog.dataset.executionId = String(state.id);
    dialog.dataset.stage = state.processing_stage;
    dialog.dataset.alert = state.processing_stage === "stage2" ? (state.alert_level ?? "") : "";
    dialog.querySelector("#detail-title").textContent =
      `Execution #${state.id} — ${state.camera_id}`;

    const img = dialog.querySelector(".detail-image");
    const noImage = dialog.querySelector(".detail-noimage");
    if (state.has_image) {
      const src = imageUrl(state.id);
      if (img.getAttribute("src") !== src) img.src = src;
      img.alt = `Camera ${state.camera_id} at ${formatTime(state.started_at)}`;
      img.hidden = false;
      noImage.hidden = true;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
      noImage.hidden = false;
      noImage.textContent = state.processing_stage === "stage1" ? "Analysing image…" : "No image";
    }

    const rows = [
      ["Alert level", alertText(state)],
      ["Smoke", yesNo(state.has_smoke)],
      ["Fire", yesNo(state.has_fire)],
      ["Detections", state.detection_count ?? "—"],
      ["Confidence", percent(state.confidence)],
      ["Telegram sent", yesNo(state.telegram_sent)],
      ["Camera", state.camera_id],
      ["Camera type", state.camera_type ?? "—"],
      ["Location", state.location ?? "—"],
      ["Workflow", state.workflow_id],
      ["Workflow status", state.status],
      ["Started", formatFullTime(state.started_at)],
      ["Stopped", formatFullTime(state.stopped_at)],
      ["Stage 2 finished", formatFullTime(state.extracted_at)],
    ];
    if (state.processing_time_ms != null) {
      rows.push(["Stage 2 time", `${Math.round(state.processing_time_ms)} ms`]);
    }
    if (state.processing_stage === "failed") {
      rows.push(["Error", state.stage2_error ?? "Stage 2 failed"]);
      rows.push(["Attempts", attemptsText(state.retry_count ?? 0)]);
    }
    const list = dialog.querySelector(".detail-fields");
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
}
