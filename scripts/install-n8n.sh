#!/usr/bin/env bash
# Installs the pinned n8n into a cache directory OUTSIDE the clone, only when
# missing. n8n 1.123.81 is the last line that runs on node 20; two npm
# overrides are needed on this machine: n8n pins xlsx to a tarball outside the
# registry (unfetchable), and its pinned isolated-vm does not build on node 20.
set -euo pipefail

N8N_VERSION="${N8N_VERSION:-1.123.81}"
CACHE_ROOT="${SMOKESIGNAL_CACHE:-$HOME/.cache/smokesignal}"
DEST="${N8N_HOME:-$CACHE_ROOT/n8n-$N8N_VERSION}"
BIN="$DEST/node_modules/.bin/n8n"
STAMP="$DEST/.installed"

if [[ -f "$STAMP" && -x "$BIN" ]]; then
	echo "$BIN"
	exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "install-n8n: npm not found (node 20 needed)" >&2; exit 1; }

# A lock so two test runs on the same machine do not install at once.
mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9
if [[ -f "$STAMP" && -x "$BIN" ]]; then
	echo "$BIN"
	exit 0
fi

cat >"$DEST/package.json" <<JSON
{
  "name": "smokesignal-n8n-cache",
  "private": true,
  "version": "0.0.0",
  "dependencies": { "n8n": "$N8N_VERSION", "flatted": "3.3.3" },
  "overrides": { "xlsx": "0.18.5", "isolated-vm": "5.0.4" }
}
JSON
echo "install-n8n: installing n8n $N8N_VERSION into $DEST (~4 min, ~1.8 GB)" >&2
(cd "$DEST" && npm install --no-audit --no-fund --loglevel=error >&2)
test -x "$BIN"
touch "$STAMP"
echo "$BIN"
