#!/usr/bin/env bash
# What is left to do in the workspace container once the cluster runs (devcontainer.json postCreateCommand):
# install Splice from the checkout, and write .vscode/launch.json attaching to every server's debugpy.
#
#   SPLICE_CLUSTER   the cluster directory (the shared volume)     /cluster
#   SPLICE_WORKSPACE the project whose launch.json is written      /workspaces/splice
set -euo pipefail

cluster=${SPLICE_CLUSTER:-/cluster}
workspace=${SPLICE_WORKSPACE:-/workspaces/splice}
python=${SPLICE_PYTHON:-python3}

if [[ -z ${SPLICE_SKIP_INSTALL:-} ]]; then
    "$python" -m pip install --quiet -e "$workspace[dev]"
fi
splice=${SPLICE:-splice}

"$splice" vscode launch "$cluster" --project "$workspace"

# The servers listen for debuggers on 0.0.0.0 inside their own containers, so `splice vscode launch` writes
# 127.0.0.1, which in this container is nobody. VS Code's debug adapter runs here, in the workspace: point
# each configuration at its server's host on the compose network (server1:5680, server2:5681).
"$python" - "$cluster" "$workspace/.vscode/launch.json" <<'PY'
import json, sys
from pathlib import Path

from splice.server.config import load_settings

settings = load_settings(Path(sys.argv[1]))
path = Path(sys.argv[2])
launch = json.loads(path.read_text(encoding="utf-8"))
hosts = {f"Splice: attach to {server.name}": server.host for server in settings.servers}
for configuration in launch["configurations"]:
    host = hosts.get(configuration.get("name"))
    if host and configuration.get("connect", {}).get("host") in ("127.0.0.1", "::1", "localhost"):
        configuration["connect"]["host"] = host
        print(f"post-create: {configuration['name']} connects to {host}:{configuration['connect']['port']}")
path.write_text(json.dumps(launch, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
PY
echo "post-create: ready; deploy with 'splice deploy FILE' (SPLICE_CLUSTER=$cluster), see devcontainer/README.md"
