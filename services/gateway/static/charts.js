// Plain SVG bar charts (no library): stacked bars whose segments are links, so a click,
// Enter on a focused bar, or "open in new tab" all lead to the matching slice.
// Sized by viewBox, so the chart scales with its container; colours come from CSS.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 800;
const HEIGHT = 240;
const MARGIN = { top: 10, right: 10, bottom: 28, left: 48 };
const MAX_LABELS = 7;

function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/** A round axis maximum at or above `value` (1, 2, 5 × 10^n); at least 4, so that the
 * quarter grid lines of a count fall on whole numbers. */
function niceMax(value) {
  if (value <= 4) return 4;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((f) => f * power >= value);
  return step * power;
}

/**
 * Draw a stacked bar chart into `container` (replacing what was there).
 * columns: [{label, title, values: {seriesKey: n}, href(seriesKey) → url|null}]
 * series:  [{key, label, className}] bottom to top.
 * formatNumber formats the axis; `description` is the chart's accessible name.
 */
export function stackedBars(container, { columns, series, formatNumber, description }) {
  const svg = svgElement("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "group",
    "aria-label": description,
  });
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const totals = columns.map((column) =>
    series.reduce((sum, s) => sum + (column.values[s.key] ?? 0), 0),
  );
  const top = niceMax(Math.max(0, ...totals));
  const y = (value) => MARGIN.top + plotHeight - (value / top) * plotHeight;

  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const value = top * fraction;
    svg.append(
      svgElement("line", {
        x1: MARGIN.left,
        x2: WIDTH - MARGIN.right,
        y1: y(value),
        y2: y(value),
        class: "chart-grid",
      }),
    );
    const tick = svgElement("text", {
      x: MARGIN.left - 6,
      y: y(value) + 4,
      class: "chart-tick",
      "text-anchor": "end",
    });
    tick.textContent = formatNumber(value);
    svg.append(tick);
  }

  const slot = plotWidth / Math.max(1, columns.length);
  const barWidth = Math.max(1, slot * 0.8);
  const labelEvery = Math.ceil(columns.length / MAX_LABELS);
  columns.forEach((column, index) => {
    const x = MARGIN.left + index * slot + (slot - barWidth) / 2;
    let base = 0;
    for (const s of series) {
      const value = column.values[s.key] ?? 0;
      if (value <= 0) continue;
      const rect = svgElement("rect", {
        x,
        y: y(base + value),
        width: barWidth,
        height: Math.max(0.5, y(base) - y(base + value)),
        class: `chart-bar ${s.className}`,
      });
      const title = svgElement("title");
      title.textContent = `${column.title} — ${s.label}: ${formatNumber(value)}`;
      rect.append(title);
      const href = column.href?.(s.key);
      if (href) {
        const link = svgElement("a", {
          href,
          "data-series": s.key,
          "data-column": index,
          "aria-label": title.textContent,
        });
        link.append(rect);
        svg.append(link);
      } else {
        svg.append(rect);
      }
      base += value;
    }
    if (index % labelEvery === 0) {
      const label = svgElement("text", {
        x: x + barWidth / 2,
        y: HEIGHT - 8,
        class: "chart-tick",
        "text-anchor": "middle",
      });
      label.textContent = column.label;
      svg.append(label);
    }
  });
  container.replaceChildren(svg);
}

/** A legend (list of swatches) for `series`. */
export function legend(container, series) {
  container.replaceChildren(
    ...series.map((s) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = `legend-swatch ${s.className}`;
      swatch.setAttribute("aria-hidden", "true");
      item.append(swatch, s.label);
      return item;
    }),
  );
}
