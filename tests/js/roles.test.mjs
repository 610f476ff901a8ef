// Unit tests of who sees the operator controls (services/gateway/static/roles.js).
// Run by `make js-test` (`node --test tests/js/`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { canOperate } from "../../services/gateway/static/roles.js";

test("operators and admins may triage (the gateway sends roles expanded)", () => {
  assert.equal(canOperate({ name: "ana", roles: ["viewer", "operator"] }), true);
  assert.equal(canOperate({ name: "root", roles: ["viewer", "operator", "admin"] }), true);
  // An admin-only list (not expanded) still counts.
  assert.equal(canOperate({ name: "root", roles: ["admin"] }), true);
});

test("the anonymous admin of no-auth mode may triage", () => {
  assert.equal(
    canOperate({ name: "anonymous", roles: ["viewer", "operator", "admin"], via: "anonymous" }),
    true,
  );
});

test("viewers, users without roles and nobody may not", () => {
  assert.equal(canOperate({ name: "vic", roles: ["viewer"] }), false);
  assert.equal(canOperate({ name: "nobody", roles: [] }), false);
  assert.equal(canOperate({ name: "odd" }), false);
  assert.equal(canOperate({ name: "odd", roles: "operator" }), false);
  assert.equal(canOperate(null), false);
  assert.equal(canOperate(undefined), false);
});

test("role names are exact (no case folding, no look-alikes)", () => {
  assert.equal(canOperate({ roles: ["Operator"] }), false);
  assert.equal(canOperate({ roles: ["operators", "researcher"] }), false);
});
