// The gallery list: one stable <li> per execution id, kept in id order (newest first).
// Each change touches only its own card, so thousands of cards stay cheap.

import { createCard, updateCard } from "./card.js";

export class Gallery {
  #list;
  #cards = new Map(); // id → <li>
  #order = []; // ids, descending

  constructor(list, { onOpen }) {
    this.#list = list;
    // One delegated listener instead of one per card.
    list.addEventListener("click", (event) => {
      if (event.target.closest(".card-select")) return; // selecting, not opening
      const card = event.target.closest("[data-execution-id]");
      if (card && list.contains(card)) onOpen(Number(card.dataset.executionId));
    });
  }

  get size() {
    return this.#cards.size;
  }

  has(id) {
    return this.#cards.has(id);
  }

  /** Show `state`: patch its card in place, or create it where its id belongs. */
  show(state, { highlight = false } = {}) {
    const existing = this.#cards.get(state.id);
    if (existing) {
      updateCard(existing, state);
      return existing;
    }
    const card = createCard(state);
    if (highlight) {
      card.classList.add("card-new");
      card.addEventListener("animationend", function done(event) {
        if (event.animationName !== "card-arrive") return;
        card.classList.remove("card-new");
        card.removeEventListener("animationend", done);
      });
    }
    const index = this.#insertionIndex(state.id);
    const before = index < this.#order.length ? this.#cards.get(this.#order[index]) : null;
    this.#list.insertBefore(card, before);
    this.#order.splice(index, 0, state.id);
    this.#cards.set(state.id, card);
    return card;
  }

  /** Show many states at once (a page): new cards go in with one DOM insertion when possible. */
  showAll(states) {
    const fresh = [];
    for (const state of states) {
      if (this.#cards.has(state.id)) updateCard(this.#cards.get(state.id), state);
      else fresh.push(state);
    }
    fresh.sort((a, b) => b.id - a.id);
    const last = this.#order[this.#order.length - 1];
    if (fresh.length > 0 && (last === undefined || fresh[0].id < last)) {
      // The usual "load more" case: every new card is older than all shown ones.
      const fragment = document.createDocumentFragment();
      for (const state of fresh) {
        const card = createCard(state);
        fragment.append(card);
        this.#order.push(state.id);
        this.#cards.set(state.id, card);
      }
      this.#list.append(fragment);
    } else {
      for (const state of fresh) this.show(state);
    }
  }

  /** The id `offset` places after `id` in the shown order (newest first), or null. */
  neighbour(id, offset) {
    const index = this.#order.indexOf(id);
    if (index < 0) return null;
    return this.#order[index + offset] ?? null;
  }

  remove(id) {
    const card = this.#cards.get(id);
    if (!card) return;
    card.remove();
    this.#cards.delete(id);
    this.#order.splice(this.#order.indexOf(id), 1);
  }

  clear() {
    this.#list.replaceChildren();
    this.#cards.clear();
    this.#order = [];
  }

  /** First position whose id is smaller than `id` (binary search over the descending order). */
  #insertionIndex(id) {
    let low = 0;
    let high = this.#order.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#order[middle] > id) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
