// Unit tests of the dashboard's display text (services/gateway/static/format.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  alertText,
  attemptsText,
  detectionsText,
  formatFullTime,
  formatTime,
  percent,
  smokeText,
  telegramText,
  yesNo,
} from "../../services/gateway/static/format.js";

test("missing or unparsable times", () => {
  assert.equal(formatTime(null), "—");
  assert.equal(formatFullTime(""), "—");
  assert.equal(formatTime("not a date"), "not a date");
  assert.notEqual(formatTime("2026-11-29T10:00:00Z"), "2026-11-29T10:00:00Z");
});

test("alert text follows the stage, then the level", () => {
  assert.equal(alertText({ processing_stage: "stage1" }), "Processing…");
  assert.equal(alertText({ processing_stage: "failed" }), "Failed");
  assert.equal(alertText({ processing_stage: "stage2", alert_level: "critical" }), "Critical");
  assert.equal(alertText({ processing_stage: "stage2", alert_level: "bogus" }), "Unknown");
});

test("yes/no fields are empty when unknown", () => {
  assert.equal(smokeText({ has_smoke: null }), "");
  assert.equal(smokeText({ has_smoke: true }), "Smoke");
  assert.equal(telegramText({ telegram_sent: false }), "No Telegram");
  assert.equal(yesNo(undefined), "—");
  assert.equal(yesNo(true), "Yes");
});

test("counts are singular or plural", () => {
  assert.equal(detectionsText({ detection_count: 1 }), "1 detection");
  assert.equal(detectionsText({ detection_count: 0 }), "0 detections");
  assert.equal(detectionsText({}), "");
  assert.equal(attemptsText(1), "1 attempt");
  assert.equal(attemptsText(3), "3 attempts");
});

test("percent has one decimal (Intl, English outside a browser)", () => {
  assert.equal(percent(0.4567), "45.7%");
  assert.equal(percent(null), "—");
});
