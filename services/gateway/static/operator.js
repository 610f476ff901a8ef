// The operator's name for the audit trail while nobody is signed in: typed once in the
// top bar, kept in localStorage. (A signed-in user's own name always wins on the server.)

import { t } from "./i18n.js";

const STORAGE_KEY = "smokesignal.operator";

let input = null;

function saved() {
  try {
    return window.localStorage.getItem(STORAGE_KEY) ?? "";
  } catch {
    return "";
  }
}

export function bindOperatorName(element) {
  input = element;
  input.value = saved();
  input.addEventListener("change", () => {
    try {
      window.localStorage.setItem(STORAGE_KEY, input.value.trim());
    } catch {
      // storage disabled: the name lasts for this page
    }
  });
}

/** The typed name, or null (then the server uses the signed-in user, or refuses). */
export function operatorName() {
  const name = (input?.value ?? saved()).trim();
  return name || null;
}

/** Ask for the name (an action needs it): the top-bar field, or a prompt over a dialog. */
export function askForOperatorName() {
  if (input && !input.closest("[inert]") && !document.querySelector("dialog[open]")) {
    input.focus();
    return;
  }
  const name = window.prompt(t("operator.prompt"))?.trim();
  if (name && input) {
    input.value = name;
    input.dispatchEvent(new Event("change"));
  }
}
