// The OIDC callback page in the sign-in popup: tell the dashboard, then close.
if (window.opener && !window.opener.closed) {
  window.opener.postMessage({ type: "smokesignal:signed-in" }, window.location.origin);
  window.close();
} else {
  window.location.replace("/");
}
