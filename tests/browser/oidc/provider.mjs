// A real OpenID Connect provider (the `oidc-provider` package) for the browser test.
// Usage: node provider.mjs  (env: PORT, MODULES = the node_modules holding oidc-provider,
// REDIRECT_URI = the gateway's /auth/callback, POST_LOGOUT_URI, ROLES_CLAIM).
// Accounts are fixed below; the provider's own login form (devInteractions) signs them
// in, and it issues real signed tokens through the code flow with PKCE.
import path from "node:path";
import { pathToFileURL } from "node:url";

const { PORT, MODULES, REDIRECT_URI, POST_LOGOUT_URI, ROLES_CLAIM } = process.env;
const { default: Provider } = await import(
  pathToFileURL(path.join(MODULES, "oidc-provider", "lib", "index.js")).href
);

const ACCOUNTS = {
  ana: { name: "Ana Operator", roles: { operator: { 2448: "smokesignal.example" } } },
  vic: { name: "Vic Viewer", roles: { viewer: { 2448: "smokesignal.example" } } },
  nobody: { name: "No Roles", roles: {} },
};

const issuer = `http://127.0.0.1:${PORT}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "smokesignal",
      token_endpoint_auth_method: "none", // a public client: PKCE alone
      redirect_uris: [REDIRECT_URI],
      post_logout_redirect_uris: [POST_LOGOUT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  pkce: { required: () => true },
  claims: { openid: ["sub"], profile: ["name", "preferred_username", ROLES_CLAIM] },
  // Scope claims in the ID token (the dashboard reads roles from it).
  conformIdTokenClaims: false,
  ttl: { IdToken: 3600, AccessToken: 3600, Session: 3600, Interaction: 600, Grant: 3600 },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const account = ACCOUNTS[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: account.name, preferred_username: id, [ROLES_CLAIM]: account.roles };
      },
    };
  },
  // First-party client: no consent screen.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid profile email");
    grant.addOIDCClaims(["name", "preferred_username", ROLES_CLAIM]);
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
provider.listen(Number(PORT), "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
