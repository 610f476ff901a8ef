// Export buttons: download the filtered list as CSV or JSON with progress in the page.
// The server streams; the page counts lines as they arrive against the filter's total.

import { countExecutions, describeError, downloadExport } from "./api.js";
import { t } from "./i18n.js";

export class ExportControl {
  #group;
  #progress;
  #bar;
  #text;
  #request = null;

  /** `currentFilters()` returns the filters to export; `errors` is the page's ErrorBanner. */
  constructor(group, currentFilters, errors) {
    this.#group = group;
    this.#progress = group.querySelector("#export-progress");
    this.#bar = this.#progress.querySelector("progress");
    this.#text = this.#progress.querySelector(".export-progress-text");
    for (const button of group.querySelectorAll("[data-export]")) {
      button.addEventListener("click", () =>
        this.#run(button.dataset.export, currentFilters(), errors),
      );
    }
    group
      .querySelector('[data-action="cancel-export"]')
      .addEventListener("click", () => this.#request?.abort());
  }

  #busy(busy) {
    for (const button of this.#group.querySelectorAll("[data-export]")) button.disabled = busy;
    this.#progress.hidden = !busy;
    this.#group.dataset.state = busy ? "running" : "idle";
  }

  #show(rows, total) {
    if (total > 0) {
      this.#bar.max = total;
      this.#bar.value = Math.min(rows, total);
      this.#text.textContent = t("export.progress", { rows, total });
    } else {
      this.#bar.removeAttribute("value"); // indeterminate
      this.#text.textContent = t("export.progress_rows", { count: rows });
    }
  }

  async #run(format, filters, errors) {
    if (this.#request) return;
    const request = new AbortController();
    this.#request = request;
    this.#busy(true);
    this.#show(0, 0);
    try {
      const { count } = await countExecutions(filters, { signal: request.signal });
      this.#show(0, count);
      const { blob, fileName } = await downloadExport(filters, format, {
        signal: request.signal,
        onProgress: (rows) => this.#show(rows, count),
      });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = fileName;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      this.#group.dataset.lastFile = fileName;
    } catch (error) {
      if (error.name !== "AbortError") {
        errors.show(t("errors.export", { reason: describeError(error) }));
      }
    } finally {
      this.#request = null;
      this.#busy(false);
    }
  }
}
