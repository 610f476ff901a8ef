// One gallery card: created once per execution id, then patched in place on every change.

import { thumbnailUrl } from "./api.js";
import { t } from "./i18n.js";
import {
  alertText,
  attemptsText,
  detectionsText,
  formatTime,
  smokeText,
  telegramText,
} from "./format.js";

const template = document.getElementById("card-template");

function field(card, name) {
  return card.querySelector(`[data-field="${name}"]`);
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
  element.hidden = text === "";
}

export function createCard(state) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.executionId = String(state.id);
  updateCard(card, state);
  return card;
}

export function updateCard(card, state) {
  const stage = state.processing_stage;
  const alert = stage === "stage2" ? (state.alert_level ?? "unknown") : "";
  card.dataset.stage = stage;
  card.dataset.alert = alert;
  card.dataset.smoke = state.has_smoke == null ? "" : String(state.has_smoke);

  setText(field(card, "camera"), state.camera_id);
  setText(field(card, "id"), `#${state.id}`);
  setText(field(card, "location"), state.location ?? "");
  const time = field(card, "time");
  time.dateTime = state.started_at;
  setText(time, formatTime(state.started_at));

  setText(field(card, "alert"), alertText(state));
  const done = stage === "stage2";
  setText(field(card, "smoke"), done ? smokeText(state) : "");
  setText(field(card, "detections"), done ? detectionsText(state) : "");
  setText(field(card, "telegram"), done ? telegramText(state) : "");
  card.dataset.falsePositive = String(Boolean(state.false_positive));
  setText(field(card, "false-positive"), state.false_positive ? t("triage.badge") : "");
  setText(
    field(card, "error"),
    stage === "failed"
      ? t("card.error_with_attempts", {
          error: state.stage2_error ?? t("stage.failed_default"),
          attempts: attemptsText(state.retry_count ?? 0),
        })
      : "",
  );

  // The button's accessible name is its text content: camera, id, time, level, results.
  updateThumbnail(card, state);
}

function updateThumbnail(card, state) {
  const img = card.querySelector(".card-img");
  const placeholder = field(card, "noimage");
  if (state.has_image) {
    const src = thumbnailUrl(state.id);
    if (img.getAttribute("src") !== src) img.src = src;
    img.hidden = false;
    placeholder.hidden = true;
  } else {
    img.removeAttribute("src");
    img.hidden = true;
    placeholder.hidden = false;
    const text = state.processing_stage === "stage1" ? t("image.analysing") : t("image.none");
    if (placeholder.textContent !== text) placeholder.textContent = text;
  }
}
