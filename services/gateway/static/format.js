// Display text for execution fields: one place, so cards and the detail view agree.
// Words come from the string tables (i18n.js); dates and numbers follow the locale.

import { dateFormat, formatNumber, t } from "./i18n.js";

const timeFormat = dateFormat({
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

const fullTimeFormat = dateFormat({ dateStyle: "medium", timeStyle: "medium" });

export const ALERT_LEVELS = ["none", "low", "medium", "high", "critical"];

/** The spelled-out alert level ("No alert", "Low", …). */
export function alertLabel(level) {
  return ALERT_LEVELS.includes(level) ? t(`alert.label.${level}`) : t("alert.unknown");
}

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : timeFormat.format(date);
}

/** Date with the year, for the detail view. */
export function formatFullTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : fullTimeFormat.format(date);
}

export function alertText(state) {
  if (state.processing_stage === "stage1") return t("stage.processing");
  if (state.processing_stage === "failed") return t("stage.failed");
  return alertLabel(state.alert_level);
}

export function smokeText(state) {
  if (state.has_smoke == null) return "";
  return state.has_smoke ? t("card.smoke") : t("card.no_smoke");
}

export function detectionsText(state) {
  const n = state.detection_count;
  if (n == null) return "";
  return t("card.detections", { count: n });
}

export function telegramText(state) {
  if (state.telegram_sent == null) return "";
  return state.telegram_sent ? t("card.telegram_sent") : t("card.no_telegram");
}

export function attemptsText(retryCount) {
  return t("card.attempts", { count: retryCount });
}

export function yesNo(value) {
  if (value == null) return "—";
  return value ? t("common.yes") : t("common.no");
}

export function percent(value) {
  return value == null
    ? "—"
    : formatNumber(value, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

/** Milliseconds, e.g. "1,234 ms" / "1.234 ms". */
export function milliseconds(value) {
  return t("unit.ms", { value: Math.round(value) });
}
