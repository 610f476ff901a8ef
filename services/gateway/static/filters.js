// The filter form ↔ a plain filters object (the REST API's query parameters).

import { t } from "./i18n.js";

export function readFilters(form) {
  const data = new FormData(form);
  return {
    has_smoke: data.get("has_smoke") === "true" ? true : null,
    alert_level: data.get("alert_level") || null,
    camera: data.get("camera") || null,
    processing_stage: data.get("processing_stage") || null,
  };
}

export function fillCameras(form, cameras) {
  const select = form.elements.camera;
  const chosen = select.value;
  const options = cameras.map(({ id, label }) => new Option(label, id));
  select.replaceChildren(new Option(t("filters.all_cameras"), ""), ...options);
  select.value = cameras.some((camera) => camera.id === chosen) ? chosen : "";
}

/** Offer a camera first seen in a live event (keeps the options sorted). */
export function addCamera(form, id) {
  const select = form.elements.camera;
  const options = [...select.options].slice(1); // after "All cameras"
  if (!id || options.some((option) => option.value === id)) return;
  const before = options.find((option) => option.value.localeCompare(id) > 0) ?? null;
  select.add(new Option(id, id), before);
}
