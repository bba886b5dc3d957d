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

# The servers listen on 0.0.0.0 in their own containers: launch.json connects to each server's host name
# (server1:5680, server2:5681), which is where VS Code's debug adapter, here in the workspace, reaches it.
"$splice" vscode launch "$cluster" --project "$workspace"

echo "post-create: ready; deploy with 'splice deploy FILE' (SPLICE_CLUSTER=$cluster), see devcontainer/README.md"
