-- Dashboard sign-in sessions (docs/AUTH.md). The browser holds a random session id in an
-- HttpOnly cookie; only its SHA-256 is stored, so a read of this table yields no cookie.
-- Rows live in PostgreSQL so every gateway replica sees a sign-in and a sign-out at once.
CREATE TABLE auth_sessions (
    id_hash     BYTEA PRIMARY KEY,
    subject     TEXT NOT NULL,
    name        TEXT NOT NULL,
    roles       TEXT[] NOT NULL,
    via         TEXT NOT NULL,            -- 'token' (shared GATEWAY_TOKEN) or 'oidc'
    csrf_token  TEXT NOT NULL,            -- sent back in X-CSRF-Token on state changes
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX auth_sessions_expires_at ON auth_sessions (expires_at);

-- OIDC sign-ins under way: the PKCE verifier and nonce wait here for the callback.
CREATE TABLE auth_pending_logins (
    state_hash     BYTEA PRIMARY KEY,
    code_verifier  TEXT NOT NULL,
    nonce          TEXT NOT NULL,
    return_to      TEXT NOT NULL,
    popup          BOOLEAN NOT NULL DEFAULT false,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX auth_pending_logins_expires_at ON auth_pending_logins (expires_at);
