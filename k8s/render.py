"""Render a kustomization of this folder without kubectl: the subset of kustomize that ``base`` and ``overlays`` use.

    python k8s/render.py k8s/overlays/second-cluster > blue.yaml     # what `kubectl kustomize` prints

Supported: ``resources`` (files and other kustomizations), ``patches`` (``path`` to a strategic-merge patch of one
object, matched by kind and name: maps merge, lists and scalars replace), ``namePrefix`` (with the references
kustomize renames too: config map and secret references, volumes, a StatefulSet's ``serviceName``) and ``labels``
(``includeSelectors: true`` also sets selectors and pod templates). Anything else is refused, so that this stays
what kustomize itself renders (the tests validate the result against the Kubernetes schemas).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

KNOWN = {"apiVersion", "kind", "resources", "patches", "namePrefix", "labels"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects the kustomization in ``directory`` makes, in order."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml: not supported here: {', '.join(sorted(unknown))}")
    objects: list[dict[str, Any]] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{directory}: only patches with a path are supported, got {patch}")
        change = yaml.safe_load((directory / patch["path"]).read_text())
        target = [o for o in objects if o["kind"] == change["kind"] and _name(o) == _name(change)]
        if len(target) != 1:
            raise ValueError(f"{directory}/{patch['path']}: no single {change['kind']} {_name(change)} to patch")
        _merge(target[0], change)
    for entry in spec.get("labels", []):
        for obj in objects:
            _label(obj, entry["pairs"], bool(entry.get("includeSelectors")))
    if prefix := spec.get("namePrefix"):
        _prefix(objects, prefix)
    return objects


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _merge(into: dict[str, Any], change: dict[str, Any]) -> None:
    for key, value in change.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _label(obj: dict[str, Any], pairs: dict[str, str], selectors: bool) -> None:
    obj["metadata"].setdefault("labels", {}).update(pairs)
    if not selectors:
        return
    spec = obj.get("spec", {})
    if obj["kind"] == "Service" and "selector" in spec:
        spec["selector"].update(pairs)
    if obj["kind"] in WORKLOADS or obj["kind"] == "PodDisruptionBudget":
        spec.setdefault("selector", {}).setdefault("matchLabels", {}).update(pairs)
    if obj["kind"] in WORKLOADS:
        spec["template"].setdefault("metadata", {}).setdefault("labels", {}).update(pairs)


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if obj["kind"] in WORKLOADS:
        yield obj["spec"]["template"]["spec"]


def _prefix(objects: list[dict[str, Any]], prefix: str) -> None:
    names = {(o["kind"], _name(o)) for o in objects}

    def renamed(kind: str, name: str) -> str:
        return prefix + name if (kind, name) in names else name

    for obj in objects:
        obj["metadata"]["name"] = prefix + _name(obj)
        if obj["kind"] == "StatefulSet" and "serviceName" in obj["spec"]:
            obj["spec"]["serviceName"] = renamed("Service", obj["spec"]["serviceName"])
        for pod in _pod_specs(obj):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                _rename_container(container, renamed)
            for volume in pod.get("volumes", []):
                if "configMap" in volume:
                    volume["configMap"]["name"] = renamed("ConfigMap", volume["configMap"]["name"])
                if "secret" in volume:
                    volume["secret"]["secretName"] = renamed("Secret", volume["secret"]["secretName"])


def _rename_container(container: dict[str, Any], renamed: Callable[[str, str], str]) -> None:
    refs = [(source, key) for source in container.get("envFrom", []) for key in ("configMapRef", "secretRef")]
    refs += [
        (variable.get("valueFrom", {}), key)
        for variable in container.get("env", [])
        for key in ("configMapKeyRef", "secretKeyRef")
    ]
    for holder, key in refs:
        if key in holder:
            kind = "ConfigMap" if key.startswith("configMap") else "Secret"
            holder[key]["name"] = renamed(kind, holder[key]["name"])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python k8s/render.py DIR (a folder holding kustomization.yaml)", file=sys.stderr)
        return 2
    print(yaml.safe_dump_all(render(Path(argv[1])), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
