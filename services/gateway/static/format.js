// Display text for execution fields: one place, so cards and the detail view agree.

const timeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

const fullTimeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});

export const ALERT_LABELS = {
  none: "No alert",
  low: "Low",
  medium: "Medium",
  high: "High",
  critical: "Critical",
};

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
  if (state.processing_stage === "stage1") return "Processing…";
  if (state.processing_stage === "failed") return "Failed";
  return ALERT_LABELS[state.alert_level] ?? "Unknown";
}

export function smokeText(state) {
  if (state.has_smoke == null) return "";
  return state.has_smoke ? "Smoke" : "No smoke";
}

export function detectionsText(state) {
  const n = state.detection_count;
  if (n == null) return "";
  return n === 1 ? "1 detection" : `${n} detections`;
}

export function telegramText(state) {
  if (state.telegram_sent == null) return "";
  return state.telegram_sent ? "Telegram sent" : "No Telegram";
}

export function attemptsText(retryCount) {
  return retryCount === 1 ? "1 attempt" : `${retryCount} attempts`;
}

export function yesNo(value) {
  if (value == null) return "—";
  return value ? "Yes" : "No";
}

export function percent(value) {
  return value == null ? "—" : `${(value * 100).toFixed(1)} %`;
}
