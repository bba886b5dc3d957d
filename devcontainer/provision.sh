#!/usr/bin/env bash
# Provision a Splice cluster directory with the commands a user runs by hand (README, "The cluster"):
# the ODB schema, the cluster and its admin token, two servers, a scheduler, the HAProxy configuration,
# then the [debug] and [pickup] settings in cluster.toml. Safe to run again: every step that is done
# already is skipped, and settings are set to what the environment says.
#
# One directory holds every part: `splice server run DIR --server serverN`, `splice scheduler run DIR
# --name scheduler1` and HAProxy (DIR/load-balancer/haproxy.cfg) each read only their own entry of
# DIR/cluster.toml and write only under DIR/<their name>/, so the compose services share it as a volume.
#
# Environment (defaults: the compose network of devcontainer/compose.yaml):
#   SPLICE_ODB              PostgreSQL URL of the ODB     postgresql+asyncpg://postgres@postgres:5432/splice
#   SPLICE_REDIS            Redis URL of the cluster bus  redis://redis:6379/0
#   SPLICE_CLUSTER_DIR      the cluster directory         /cluster
#   SPLICE_CLUSTER_NAME     the cluster's name            devcluster
#   SPLICE_PROJECT_DIR      the pickup directory          /project
#   SPLICE_SERVER1_HOST/PORT, SPLICE_SERVER2_HOST/PORT    server1:17011, server2:17012
#   SPLICE_LB_HOST/PORT     where HAProxy listens         0.0.0.0:17010
#   SPLICE_DEBUG_ENABLED    [debug] enabled               true
#   SPLICE_DEBUG_HOST       [debug] host                  0.0.0.0 (allow_remote follows: true off the loopback)
#   SPLICE_DEBUG_PORT       [debug] port (server2: +1)    5680
#   SPLICE (the command)    splice
set -euo pipefail

odb=${SPLICE_ODB:-postgresql+asyncpg://postgres@postgres:5432/splice}
redis=${SPLICE_REDIS:-redis://redis:6379/0}
dir=${SPLICE_CLUSTER_DIR:-/cluster}
name=${SPLICE_CLUSTER_NAME:-devcluster}
project=${SPLICE_PROJECT_DIR:-/project}
server1_host=${SPLICE_SERVER1_HOST:-server1}
server1_port=${SPLICE_SERVER1_PORT:-17011}
server2_host=${SPLICE_SERVER2_HOST:-server2}
server2_port=${SPLICE_SERVER2_PORT:-17012}
lb_host=${SPLICE_LB_HOST:-0.0.0.0}
lb_port=${SPLICE_LB_PORT:-17010}
debug_enabled=${SPLICE_DEBUG_ENABLED:-true}
debug_host=${SPLICE_DEBUG_HOST:-0.0.0.0}
debug_port=${SPLICE_DEBUG_PORT:-5680}
splice=${SPLICE:-splice}
# The python that runs splice, for reading and editing cluster.toml (tomllib, and Splice's own checks).
python=${SPLICE_PYTHON:-$(head -1 "$(command -v "$splice")" | sed -n 's/^#!\([^ ]*python[^ ]*\).*/\1/p')}
python=${python:-python3}

say() { printf 'provision: %s\n' "$*"; }

# Whether cluster.toml has a [[servers]] or [[schedulers]] entry of that name.
has() {
    "$python" - "$dir/cluster.toml" "$1" "$2" <<'EOF'
import sys, tomllib
data = tomllib.load(open(sys.argv[1], "rb"))
sys.exit(0 if any(entry.get("name") == sys.argv[3] for entry in data.get(sys.argv[2], [])) else 1)
EOF
}

"$splice" create odb "$odb"

if [[ ! -f $dir/cluster.toml ]]; then
    # 'create server' wants an empty (or new) directory: the first admin token waits beside it until then.
    token=$(mktemp)
    trap 'rm -f "$token"' EXIT
    "$splice" create cluster "$name" --odb "$odb" --token-file "$token"
    "$splice" create server "$dir" --odb "$odb" --cluster "$name" --redis "$redis" \
        --name server1 --host "$server1_host" --port "$server1_port"
    install -m 600 "$token" "$dir/cluster-admin-token"
else
    say "$dir/cluster.toml is there: cluster and server1 are made"
fi

if has servers server2; then
    say "server2 is there"
else
    "$splice" create server "$dir" --name server2 --host "$server2_host" --port "$server2_port"
fi

if has schedulers scheduler1; then
    say "scheduler1 is there"
else
    "$splice" create scheduler "$dir" --name scheduler1
fi

# Idempotent by itself: sets [load_balancer] and rewrites load-balancer/haproxy.cfg.
"$splice" create load-balancer "$dir" --host "$lb_host" --port "$lb_port"

# [debug] and [pickup] have no command: a user edits cluster.toml; here the edit is checked by loading it.
"$python" - "$dir" "$debug_enabled" "$debug_host" "$debug_port" "$project" <<'EOF'
import re, sys, tomllib
from pathlib import Path

from splice.server.config import CONFIG_FILE, LOOPBACK, _toml_str, load_settings

directory, enabled, host, port, project = sys.argv[1:]
path = Path(directory) / CONFIG_FILE
text = path.read_text(encoding="utf-8")
enabled = enabled.lower() in ("1", "true", "yes")
# An attach point off the loopback is refused unless meant: here it is, reachable only inside the compose
# network and published on the host's loopback (compose.yaml).
remote = host not in LOOPBACK
debug = (
    "[debug]  # provision.sh: attach points reachable on the compose network\n"
    f"enabled = {str(enabled).lower()}\nhost = {_toml_str(host)}\nport = {int(port)}\n"
    f"allow_remote = {str(remote).lower()}\n"
)
# Drop an earlier [debug] table (up to the next header), then put the new one before the first [[servers]].
text = re.sub(r"(?m)^\[debug\][^\n]*\n(?:(?!\[)[^\n]*\n)*", "", text)
text = re.sub(r"(?m)^\[\[servers\]\]", lambda m: debug + "\n" + m.group(0), text, count=1)
text, found = re.subn(r"(?m)^dirs = \[.*\]$", f"dirs = [{_toml_str(project)}]", text, count=1)
if not found:
    sys.exit(f"provision: no 'dirs = [...]' line under [pickup] in {path}")
tomllib.loads(text)
partial = path.with_name(CONFIG_FILE + ".new")
partial.write_text(text, encoding="utf-8")
partial.replace(path)
settings = load_settings(Path(directory))  # raises, naming the field, if the edit broke anything
print(f"provision: [debug] enabled={settings.debug.enabled} host={settings.debug.host} port={settings.debug.port}")
print(f"provision: pickup directory {', '.join(map(str, settings.pickup_dirs))}")
EOF

mkdir -p "$project"
say "cluster '$name' is in $dir: servers, scheduler1 and load-balancer/haproxy.cfg"
