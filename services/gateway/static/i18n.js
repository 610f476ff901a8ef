// Translations: one string table per language (locales/<lang>.json, flat keys) and
// `t(key, params)`. The language comes from the saved choice, else the browser's
// preferences, else English. Changing it saves the choice and reloads the page (the
// view lives in the URL, so nothing is lost), which keeps every module simple: each
// renders with the language it started with.
//
// Adding a string: put the key in BOTH locales/en.json and locales/es.json
// (tests/gateway/test_i18n.py checks that the tables agree and that every key the
// page uses exists). Plurals: the value is an object of Intl.PluralRules categories,
// e.g. {"one": "{count} detection", "other": "{count} detections"}, chosen by
// params.count. Placeholders are {name}; numbers in params are formatted per locale.
// Static HTML: data-i18n="key" sets the text, data-i18n-attr="aria-label:key;title:key"
// sets attributes.

import en from "./locales/en.json" with { type: "json" };
import es from "./locales/es.json" with { type: "json" };

// Both tables are imported (a few KB each): no fetch, no wait, and the module also
// loads outside a browser (the node unit tests of format.js and store.js).
const TABLES = { en, es };
export const LANGUAGES = Object.keys(TABLES);
const FALLBACK = "en";
const STORAGE_KEY = "smokesignal.lang";

function savedLanguage() {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the browser's preference decides
  }
}

/** The first supported language among the saved choice and the browser's preferences. */
// Outside a browser (node tests) there is no navigator: English.
const browserLanguages = globalThis.navigator?.languages ?? [];

function chooseLanguage() {
  const saved = savedLanguage();
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of browserLanguages) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return FALLBACK;
}

/** A full locale for Intl: the browser's own regional tag when it is in our language. */
function chooseLocale(lang) {
  const regional = browserLanguages.find(
    (tag) => String(tag).toLowerCase().split("-")[0] === lang,
  );
  return regional ?? lang;
}

const current = chooseLanguage();
const currentLocale = chooseLocale(current);
const table = TABLES[current];
const fallbackTable = current === FALLBACK ? null : TABLES[FALLBACK];
const pluralRules = new Intl.PluralRules(currentLocale);
const numberFormat = new Intl.NumberFormat(currentLocale);
const missing = new Set();

export function language() {
  return current;
}

/** The BCP 47 locale used for dates and numbers (e.g. "es-AR" or "es"). */
export function locale() {
  return currentLocale;
}

/** Save the choice and reload: the new language applies everywhere at once. */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang) || lang === current) return;
  try {
    window.localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // storage disabled: the choice lasts for this page only via the reload below
  }
  window.location.reload();
}

function lookup(key) {
  if (Object.hasOwn(table, key)) return table[key];
  if (fallbackTable && Object.hasOwn(fallbackTable, key)) return fallbackTable[key];
  return undefined;
}

function interpolate(text, params) {
  return text.replace(/\{(\w+)\}/g, (whole, name) => {
    if (!Object.hasOwn(params, name)) return whole;
    const value = params[name];
    return typeof value === "number" ? numberFormat.format(value) : String(value ?? "");
  });
}

/** The text for `key` in the current language, with {placeholders} filled from params. */
export function t(key, params = {}) {
  let entry = lookup(key);
  if (entry === undefined) {
    if (!missing.has(key)) {
      missing.add(key);
      console.warn(`i18n: no text for "${key}"`);
    }
    return key;
  }
  if (typeof entry === "object") {
    const category = pluralRules.select(Number(params.count ?? 0));
    entry = entry[category] ?? entry.other;
  }
  return interpolate(entry, params);
}

export function formatNumber(value, options) {
  if (value == null || Number.isNaN(value)) return "—";
  return options
    ? new Intl.NumberFormat(currentLocale, options).format(value)
    : numberFormat.format(value);
}

export function dateFormat(options) {
  return new Intl.DateTimeFormat(currentLocale, options);
}

/** Fill data-i18n / data-i18n-attr elements under `root` and set <html lang>. */
export function translatePage(root = document) {
  if (root === document) document.documentElement.lang = current;
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of element.dataset.i18nAttr.split(";")) {
      const [attribute, key] = pair.split(":").map((part) => part.trim());
      if (attribute && key) element.setAttribute(attribute, t(key));
    }
  }
  // Cards and rows are cloned from <template>s: translate them once, at the source.
  for (const template of root.querySelectorAll("template")) translatePage(template.content);
}

/** Wire a <select> of languages: shows the current one, switches on change. */
export function bindLanguageSwitch(select) {
  select.value = current;
  select.addEventListener("change", () => setLanguage(select.value));
}
