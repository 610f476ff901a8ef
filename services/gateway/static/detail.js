// The detail view: a modal <dialog> with the full image and every result field.

import { imageUrl } from "./api.js";
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
    dialog.querySelector("#detail-title").textContent = t("detail.title", {
      id: String(state.id),
      camera: state.camera_id,
    });

    const img = dialog.querySelector(".detail-image");
    const noImage = dialog.querySelector(".detail-noimage");
    if (state.has_image) {
      const src = imageUrl(state.id);
      if (img.getAttribute("src") !== src) img.src = src;
      img.alt = t("detail.image_alt", {
        camera: state.camera_id,
        time: formatTime(state.started_at),
      });
      img.hidden = false;
      noImage.hidden = true;
    } else {
      img.removeAttribute("src");
      img.hidden = true;
      noImage.hidden = false;
      noImage.textContent =
        state.processing_stage === "stage1" ? t("image.analysing") : t("image.none");
    }

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
      [t("field.started"), formatFullTime(state.started_at)],
      [t("field.stopped"), formatFullTime(state.stopped_at)],
      [t("field.stage2_finished"), formatFullTime(state.extracted_at)],
    ];
    if (state.processing_time_ms != null) {
      rows.push([t("field.stage2_time"), milliseconds(state.processing_time_ms)]);
    }
    if (state.processing_stage === "failed") {
      rows.push([t("field.error"), state.stage2_error ?? t("stage.failed_default")]);
      rows.push([t("field.attempts"), attemptsText(state.retry_count ?? 0)]);
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
