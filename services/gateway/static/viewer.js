// The detail image: detection boxes drawn over it, zoom 1–10× and pan.
//
// The image and an SVG overlay sit in one "stage" that is moved with a single CSS
// transform (translate + scale), so boxes stay exactly on the pixels they name at any
// zoom. The SVG's viewBox is the image's own pixel size (from the detail, else the
// loaded image), so a box {x, y, width, height} in image pixels is drawn as is.
// Strokes keep their screen width at any zoom (vector-effect: non-scaling-stroke).

import { formatNumber, t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
export const MIN_ZOOM = 1;
export const MAX_ZOOM = 10;
const KEY_ZOOM_STEP = 1.25;
const KEY_PAN_PX = 60;

export class ImageViewer {
  #viewport;
  #stage;
  #img;
  #svg;
  #scale = 1;
  #x = 0;
  #y = 0;
  #pointers = new Map(); // pointerId → {x, y}, for drag and pinch
  #pinch = null; // {distance, scale}
  #detections = [];
  #size = null; // {width, height} in image pixels
  #showBoxes = true;
  onChange = () => {};

  constructor(viewport) {
    this.#viewport = viewport;
    this.#stage = viewport.querySelector(".viewer-stage");
    this.#img = viewport.querySelector(".viewer-image");
    this.#svg = viewport.querySelector(".viewer-boxes");
    this.#img.addEventListener("load", () => {
      if (!this.#size && this.#img.naturalWidth) {
        this.#drawBoxes({ width: this.#img.naturalWidth, height: this.#img.naturalHeight });
      }
      this.#apply();
    });
    viewport.addEventListener("wheel", (event) => this.#onWheel(event), { passive: false });
    viewport.addEventListener("pointerdown", (event) => this.#onPointerDown(event));
    viewport.addEventListener("pointermove", (event) => this.#onPointerMove(event));
    for (const type of ["pointerup", "pointercancel", "pointerleave"]) {
      viewport.addEventListener(type, (event) => this.#onPointerUp(event));
    }
    viewport.addEventListener("dblclick", () => this.reset());
  }

  get zoom() {
    return this.#scale;
  }

  get boxesShown() {
    return this.#showBoxes;
  }

  /** Show an image URL with its detections ([{class, confidence, bbox}], image pixels). */
  show(src, detections, size) {
    this.#detections = Array.isArray(detections) ? detections : [];
    this.#size = size?.width && size?.height ? size : null;
    if (this.#img.getAttribute("src") !== src) {
      this.#img.src = src;
    }
    const known =
      this.#size ??
      (this.#img.complete && this.#img.naturalWidth
        ? { width: this.#img.naturalWidth, height: this.#img.naturalHeight }
        : null);
    this.#drawBoxes(known);
  }

  /** New detections for the image on screen (the fresh detail arrived). */
  updateDetections(detections, size) {
    this.#detections = Array.isArray(detections) ? detections : [];
    if (size?.width && size?.height) this.#size = size;
    const known =
      this.#size ??
      (this.#img.naturalWidth
        ? { width: this.#img.naturalWidth, height: this.#img.naturalHeight }
        : null);
    this.#drawBoxes(known);
  }

  clear() {
    this.#img.removeAttribute("src");
    this.#detections = [];
    this.#size = null;
    this.#svg.replaceChildren();
  }

  setBoxesShown(shown) {
    this.#showBoxes = shown;
    this.#svg.style.display = shown ? "" : "none";
    this.#viewport.dataset.boxes = shown ? "shown" : "hidden";
    this.onChange();
  }

  toggleBoxes() {
    this.setBoxesShown(!this.#showBoxes);
  }

  reset() {
    this.#scale = 1;
    this.#x = 0;
    this.#y = 0;
    this.#apply();
  }

  /** Zoom by `factor` around a point of the viewport (its centre by default). */
  zoomBy(factor, point = null) {
    const rect = this.#viewport.getBoundingClientRect();
    const px = point ? point.x - rect.left : rect.width / 2;
    const py = point ? point.y - rect.top : rect.height / 2;
    const next = clamp(this.#scale * factor, MIN_ZOOM, MAX_ZOOM);
    // Keep the image point under (px, py) where it is.
    this.#x = px - ((px - this.#x) * next) / this.#scale;
    this.#y = py - ((py - this.#y) * next) / this.#scale;
    this.#scale = next;
    this.#apply();
  }

  zoomIn() {
    this.zoomBy(KEY_ZOOM_STEP);
  }

  zoomOut() {
    this.zoomBy(1 / KEY_ZOOM_STEP);
  }

  panBy(dx, dy) {
    this.#x += dx;
    this.#y += dy;
    this.#apply();
  }

  /** Keyboard panning (Shift + arrows): returns true when the key was used. */
  panKey(key) {
    const moves = {
      ArrowLeft: [KEY_PAN_PX, 0],
      ArrowRight: [-KEY_PAN_PX, 0],
      ArrowUp: [0, KEY_PAN_PX],
      ArrowDown: [0, -KEY_PAN_PX],
    };
    if (!moves[key]) return false;
    this.panBy(...moves[key]);
    return true;
  }

  #onWheel(event) {
    event.preventDefault();
    // Trackpad pinch arrives as a wheel with ctrlKey; both zoom around the cursor.
    const factor = Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.0015));
    this.zoomBy(factor, { x: event.clientX, y: event.clientY });
  }

  #onPointerDown(event) {
    if (event.button !== 0 && event.pointerType === "mouse") return;
    this.#viewport.setPointerCapture?.(event.pointerId);
    this.#pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (this.#pointers.size === 2) {
      const [a, b] = [...this.#pointers.values()];
      this.#pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y), scale: this.#scale };
    }
    this.#viewport.dataset.dragging = "true";
  }

  #onPointerMove(event) {
    const last = this.#pointers.get(event.pointerId);
    if (!last) return;
    const now = { x: event.clientX, y: event.clientY };
    this.#pointers.set(event.pointerId, now);
    if (this.#pointers.size === 2 && this.#pinch) {
      const [a, b] = [...this.#pointers.values()];
      const distance = Math.hypot(a.x - b.x, a.y - b.y);
      const target = (this.#pinch.scale * distance) / Math.max(1, this.#pinch.distance);
      this.zoomBy(target / this.#scale, { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
    } else if (this.#pointers.size === 1) {
      this.panBy(now.x - last.x, now.y - last.y);
    }
  }

  #onPointerUp(event) {
    this.#pointers.delete(event.pointerId);
    if (this.#pointers.size < 2) this.#pinch = null;
    if (this.#pointers.size === 0) delete this.#viewport.dataset.dragging;
  }

  /** Apply the transform, keeping the image covering the viewport (no panning it away). */
  #apply() {
    const width = this.#viewport.clientWidth;
    const height = this.#viewport.clientHeight;
    // At 1× the stage fills the viewport: panning may move at most the zoomed overflow.
    this.#x = clamp(this.#x, width - width * this.#scale, 0);
    this.#y = clamp(this.#y, height - height * this.#scale, 0);
    if (this.#scale === 1) {
      this.#x = 0;
      this.#y = 0;
    }
    this.#stage.style.transform = `translate(${this.#x}px, ${this.#y}px) scale(${this.#scale})`;
    this.#viewport.dataset.zoom = this.#scale.toFixed(2);
    this.onChange();
  }

  #drawBoxes(size) {
    const svg = this.#svg;
    svg.replaceChildren();
    if (!size) return;
    svg.setAttribute("viewBox", `0 0 ${size.width} ${size.height}`);
    // The viewport takes the image's shape, so the stage (and the SVG) cover it exactly.
    this.#viewport.style.setProperty("--ratio", String(size.width / size.height));
    for (const [index, detection] of this.#detections.entries()) {
      const box = detection?.bbox;
      if (!box) continue;
      const kind = detection.class === "fire" ? "fire" : "smoke";
      const group = document.createElementNS(SVG, "g");
      group.setAttribute("class", `box box-${kind}`);
      group.dataset.index = String(index);
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", String(box.x));
      rect.setAttribute("y", String(box.y));
      rect.setAttribute("width", String(box.width));
      rect.setAttribute("height", String(box.height));
      rect.setAttribute("vector-effect", "non-scaling-stroke");
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", String(box.x));
      label.setAttribute("y", String(Math.max(0, box.y - 2)));
      label.setAttribute("font-size", String(Math.max(8, size.height / 30)));
      label.textContent = `${t(`box.${kind}`)} ${formatNumber(detection.confidence, {
        style: "percent",
        maximumFractionDigits: 0,
      })}`;
      const title = document.createElementNS(SVG, "title");
      title.textContent = label.textContent;
      group.append(rect, label, title);
      svg.append(group);
    }
    svg.dataset.count = String(this.#detections.length);
  }
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}
