// Selecting cards in the gallery and acting on all of them at once (bulk false-positive
// marking, up to MAX_BULK per request). A checkbox on each card; the bar appears while
// something is selected.

import { describeError } from "./api.js";
import { t } from "./i18n.js";
import { askForOperatorName, operatorName } from "./operator.js";
import { setFalsePositive } from "./triage-api.js";

export const MAX_BULK = 500;

export class Selection {
  #ids = new Set();
  #bar;
  #list;
  #onTriage;
  #onError;

  constructor(list, bar, { onTriage, onError }) {
    this.#list = list;
    this.#bar = bar;
    this.#onTriage = onTriage;
    this.#onError = onError;
    list.addEventListener("change", (event) => {
      const box = event.target.closest(".card-check");
      const card = box?.closest("[data-execution-id]");
      if (!card) return;
      this.set(Number(card.dataset.executionId), box.checked);
    });
    bar.addEventListener("click", (event) => {
      const action = event.target.closest("button[data-action]")?.dataset.action;
      if (action === "bulk-mark") this.#apply(true);
      else if (action === "bulk-unmark") this.#apply(false);
      else if (action === "bulk-clear") this.clear();
    });
    this.#render();
  }

  get ids() {
    return [...this.#ids];
  }

  set(id, selected) {
    if (selected && !this.#ids.has(id) && this.#ids.size >= MAX_BULK) {
      this.#onError(t("bulk.too_many", { max: MAX_BULK }));
      this.#check(id, false);
      return;
    }
    if (selected) this.#ids.add(id);
    else this.#ids.delete(id);
    this.#check(id, selected);
    this.#render();
  }

  /** A card left the gallery (filters, reload): it is no longer selected. */
  forget(id) {
    if (this.#ids.delete(id)) this.#render();
  }

  clear() {
    for (const id of this.#ids) this.#check(id, false);
    this.#ids.clear();
    this.#render();
  }

  #check(id, checked) {
    const box = this.#list.querySelector(`[data-execution-id="${id}"] .card-check`);
    if (box) box.checked = checked;
  }

  async #apply(falsePositive) {
    const ids = this.ids;
    if (ids.length === 0) return;
    const reasonInput = this.#bar.querySelector('input[name="reason"]');
    const buttons = this.#bar.querySelectorAll("button");
    for (const button of buttons) button.disabled = true;
    try {
      const result = await setFalsePositive(ids, {
        falsePositive,
        reason: reasonInput.value.trim() || null,
        actor: operatorName(),
      });
      reasonInput.value = "";
      this.#onTriage(result.updated ?? []);
      this.clear();
    } catch (error) {
      if (error.status === 422 && !operatorName()) askForOperatorName();
      this.#onError(describeError(error));
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  #render() {
    this.#bar.hidden = this.#ids.size === 0;
    this.#bar.querySelector(".bulk-count").textContent = t("bulk.count", {
      count: this.#ids.size,
    });
  }
}
