// A camera's frames in time order around the open execution: step earlier/later,
// hold-to-play, and prefetch (details in pages of PAGE frames, images a few ahead).

import { imageUrl } from "./api.js";
import { getSequence } from "./triage-api.js";

const PAGE = 20;
const REFILL_BELOW = 8; // fetch the next page when fewer frames than this are buffered
const PRELOAD_IMAGES = 4; // images fetched ahead in the direction of travel
const PRELOADED_MAX = 200;

export class CameraSequence {
  #current = null;
  #buffers = { next: [], previous: [] };
  #ended = { next: false, previous: false };
  #loading = { next: null, previous: null };
  #preloaded = new Map(); // id → Image, so the browser keeps the decoded frame
  #epoch = 0; // bumped by reset(): answers for an older frame are dropped

  get current() {
    return this.#current;
  }

  /** Start from `state` (another execution was opened, not stepped to). */
  reset(state) {
    if (this.#current?.id === state.id) {
      this.#current = { ...this.#current, ...state };
      return;
    }
    this.#epoch += 1;
    this.#current = state;
    this.#buffers = { next: [], previous: [] };
    this.#ended = { next: false, previous: false };
    this.#loading = { next: null, previous: null };
  }

  /** Keep the buffered copy of an execution fresh (a live update arrived). */
  refresh(state) {
    for (const buffer of Object.values(this.#buffers)) {
      const index = buffer.findIndex((frame) => frame.id === state.id);
      if (index >= 0) buffer[index] = { ...buffer[index], ...state };
    }
  }

  /** The adjacent frame in `direction` ("next" | "previous"), now current; null at the end. */
  async step(direction) {
    const buffer = this.#buffers[direction];
    if (buffer.length === 0 && !this.#ended[direction]) await this.#load(direction);
    if (buffer.length === 0 || !this.#current) return null;
    const frame = buffer.shift();
    const other = direction === "next" ? "previous" : "next";
    this.#buffers[other].unshift(this.#current);
    this.#current = frame;
    this.prefetch(direction);
    return frame;
  }

  /** Fill the buffer and warm the image cache in `direction` (no waiting). */
  prefetch(direction = "next") {
    if (this.#buffers[direction].length < REFILL_BELOW && !this.#ended[direction]) {
      this.#load(direction).catch(() => {});
    }
    for (const frame of this.#buffers[direction].slice(0, PRELOAD_IMAGES)) {
      if (!frame.has_image || this.#preloaded.has(frame.id)) continue;
      const image = new Image();
      image.decoding = "async";
      image.src = imageUrl(frame.id);
      image.decode().catch(() => {}); // decoded ahead too, not only downloaded
      this.#preloaded.set(frame.id, image);
      if (this.#preloaded.size > PRELOADED_MAX) {
        this.#preloaded.delete(this.#preloaded.keys().next().value);
      }
    }
  }

  #load(direction) {
    if (this.#loading[direction]) return this.#loading[direction];
    const epoch = this.#epoch;
    const buffer = this.#buffers[direction];
    const anchor = buffer.length > 0 ? buffer[buffer.length - 1] : this.#current;
    if (!anchor) return Promise.resolve();
    const request = getSequence(anchor.id, direction, PAGE)
      .then((page) => {
        if (epoch !== this.#epoch) return;
        const known = new Set(buffer.map((frame) => frame.id));
        for (const item of page.items ?? []) if (!known.has(item.id)) buffer.push(item);
        if (page.next_anchor == null) this.#ended[direction] = true;
      })
      .finally(() => {
        if (epoch === this.#epoch) this.#loading[direction] = null;
      });
    this.#loading[direction] = request;
    return request;
  }
}

/**
 * Hold-to-play: while held, step every 1000/fps ms (a step that takes longer just
 * delays the next one). `step()` resolves false at the end of the sequence.
 */
export class HoldToPlay {
  #step;
  #onState;
  #token = 0;
  #fps = 0;

  constructor(step, onState = () => {}) {
    this.#step = step;
    this.#onState = onState;
  }

  get fps() {
    return this.#fps;
  }

  async start(fps) {
    if (this.#fps === fps) return;
    const token = ++this.#token;
    this.#fps = fps;
    this.#onState(fps);
    const interval = 1000 / fps;
    while (token === this.#token) {
      const started = performance.now();
      const more = await this.#step();
      if (token !== this.#token) return;
      if (!more) break;
      const rest = interval - (performance.now() - started);
      if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    }
    if (token === this.#token) this.stop();
  }

  stop() {
    this.#token += 1;
    if (this.#fps !== 0) {
      this.#fps = 0;
      this.#onState(0);
    }
  }
}
