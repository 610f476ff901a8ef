// Signing in. The page holds no secret: the gateway keeps the browser signed in with an
// HttpOnly session cookie, which fetch, EventSource and <img> send by themselves, so no
// token ever goes into a URL. A person signs in once, either with the shared access
// token (exchanged at POST /auth/token for the cookie) or through the identity provider
// (OIDC, in a popup so this page keeps its state; a full redirect if popups are blocked).
// State changes carry the session's CSRF token in a header (`csrfHeaders()`).

import { t } from "./i18n.js";

const SIGNED_IN_MESSAGE = "smokesignal:signed-in";

let session = null; // GET /auth/session: {mode, signed_in, user, csrf_token, ...}
let pendingPrompt = null;
const listeners = new Set();

/** Ask the gateway who this browser is signed in as. */
export async function loadSession() {
  const response = await fetch("/auth/session", { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  setSession(await response.json());
  return session;
}

function setSession(next) {
  session = next;
  for (const listener of listeners) listener(session);
}

/** Call `listener(session)` whenever the sign-in state changes. */
export function onSessionChange(listener) {
  listeners.add(listener);
  if (session) listener(session);
}

/** The signed-in user ({name, roles, via}) or null. */
export function currentUser() {
  return session?.signed_in ? session.user : null;
}

export function hasRole(role) {
  return currentUser()?.roles?.includes(role) ?? false;
}

/** Headers a state-changing request (POST/PUT/PATCH/DELETE) must carry. */
export function csrfHeaders() {
  return session?.csrf_token ? { "X-CSRF-Token": session.csrf_token } : {};
}

/** Signed in already, or ask for it (one dialog however many requests were refused). */
export async function ensureSignedIn() {
  if (!session) await loadSession();
  if (!session.signed_in) await signIn();
}

/**
 * Ask the user to sign in; resolves once the gateway has a session for this browser.
 * `reason` ("expired", "refused", "signed-out") picks the message.
 */
export function signIn(reason) {
  if (pendingPrompt) return pendingPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = dialog.querySelector("form");
  const input = form.elements.token;
  const message = dialog.querySelector(".token-message");
  const tokenPart = dialog.querySelector(".token-part");
  const oidcPart = dialog.querySelector(".oidc-part");
  const oidcButton = dialog.querySelector('[data-action="oidc-sign-in"]');
  const wasSignedIn = session?.signed_in;
  tokenPart.hidden = !session?.token_sign_in;
  oidcPart.hidden = !session?.oidc_sign_in;
  input.required = !tokenPart.hidden;
  message.textContent =
    reason === "expired" || wasSignedIn
      ? t("signin.expired")
      : reason === "signed-out"
        ? t("signin.signed_out")
        : session?.token_sign_in && !session?.oidc_sign_in
          ? t("token.needed")
          : t("signin.needed");
  input.value = "";

  pendingPrompt = new Promise((resolve) => {
    const done = (next) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("cancel", onCancel);
      oidcButton.removeEventListener("click", onOidc);
      window.removeEventListener("message", onMessage);
      dialog.close();
      pendingPrompt = null;
      setSession(next);
      resolve(next);
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      const response = await fetch("/auth/token", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ token }),
      });
      if (response.ok) {
        done(await response.json());
        return;
      }
      input.value = "";
      message.textContent =
        response.status === 429 ? t("signin.too_many") : t("token.refused");
    };
    const onOidc = () => {
      const popup = window.open("/auth/login?popup=true", "smokesignal-signin", "popup,width=520,height=680");
      if (!popup) {
        // Popups blocked: sign in with the whole page and come back to this view.
        const back = window.location.pathname + window.location.search;
        window.location.assign(`/auth/login?return_to=${encodeURIComponent(back)}`);
      }
    };
    const onMessage = async (event) => {
      if (event.origin !== window.location.origin || event.data?.type !== SIGNED_IN_MESSAGE) return;
      const next = await loadSession();
      if (next.signed_in) done(next);
    };
    // Without a session nothing can be shown, so the dialog cannot be dismissed.
    const onCancel = (event) => event.preventDefault();
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("cancel", onCancel);
    oidcButton.addEventListener("click", onOidc);
    window.addEventListener("message", onMessage);
  });
  dialog.showModal();
  if (!tokenPart.hidden) input.focus();
  return pendingPrompt;
}

/** End the session (and, with OIDC, the identity provider's too, in a new tab). */
export async function signOut() {
  const response = await fetch("/auth/logout", {
    method: "POST",
    headers: { Accept: "application/json", ...csrfHeaders() },
  });
  const body = response.ok ? await response.json() : {};
  await loadSession();
  if (body.end_session_url) window.open(body.end_session_url, "_blank", "noopener");
  return signIn("signed-out");
}
