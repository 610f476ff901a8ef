// The gateway token: taken from the page URL (?token=…) or asked for on a 401,
// kept in sessionStorage so it survives reloads but not the browser session.

import { t } from "./i18n.js";

const STORAGE_KEY = "smokesignal.token";

let pendingPrompt = null;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the token lives only in memory
  }
}

let memoryToken = null;

export function getToken() {
  return storage()?.getItem(STORAGE_KEY) ?? memoryToken;
}

function setToken(token) {
  memoryToken = token;
  storage()?.setItem(STORAGE_KEY, token);
}

/** Move a ?token= from the address bar into storage, so it does not linger in history. */
export function adoptTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (!token) return;
  setToken(token);
  url.searchParams.delete("token");
  window.history.replaceState(window.history.state, "", url);
}

/** `path` with the token as a query parameter (for EventSource and <img>, which cannot send headers). */
export function withTokenParam(path) {
  const token = getToken();
  if (!token) return path;
  const url = new URL(path, window.location.origin);
  url.searchParams.set("token", token);
  return url.pathname + url.search;
}

export function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * Ask the user for a token (one dialog however many requests were refused at once).
 * Resolves once a new token is stored.
 */
export function askForToken() {
  if (pendingPrompt) return pendingPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = dialog.querySelector("form");
  const input = form.elements.token;
  const message = dialog.querySelector(".token-message");
  message.textContent = getToken() ? t("token.refused") : t("token.needed");
  input.value = "";
  pendingPrompt = new Promise((resolve) => {
    const onSubmit = () => {
      const token = input.value.trim();
      if (!token) return;
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      setToken(token);
      pendingPrompt = null;
      resolve(token);
    };
    // Without a token nothing can be shown, so the dialog cannot be dismissed.
    const onCancel = (event) => event.preventDefault();
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
  });
  dialog.showModal();
  input.focus();
  return pendingPrompt;
}
