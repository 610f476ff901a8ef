// What the signed-in user may do on this page. The gateway sends each user's roles
// already expanded (admin ⊇ operator ⊇ viewer), so a name check is enough here; the
// server still checks every request — this only keeps controls a user cannot use off
// the page. Pure (no DOM), so `node --test` covers it.

/** Roles that may mark false positives and acknowledge alerts. */
export const OPERATOR_ROLES = Object.freeze(["operator", "admin"]);

/** True when `user` ({roles: [...]}, as GET /auth/session sends it) may triage. */
export function canOperate(user) {
  const roles = user?.roles;
  return Array.isArray(roles) && roles.some((role) => OPERATOR_ROLES.includes(role));
}
