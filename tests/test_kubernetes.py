"""The Kubernetes manifests (k8s/): the base and the second-cluster overlay, rendered by k8s/render.py (the subset of
kustomize they use; no kubectl here), each object validated with kubernetes-validate against the newest Kubernetes
its schemas have (strict: an unknown field is an error), and checked for what running Splice there needs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
LAYOUTS = {"base": K8S / "base", "second-cluster": K8S / "overlays" / "second-cluster"}


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("splice_k8s_render", K8S / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render(layout: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = _renderer().render(LAYOUTS[layout])
    return objects


def _by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def _pods(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], o["spec"]["template"]) for o in objects if o["kind"] in ("Deployment", "StatefulSet")
    ]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_object_validates_against_the_newest_kubernetes(layout: str) -> None:
    version = latest_version()
    assert int(version.split(".")[1]) >= 30
    objects = _render(layout)
    assert len(objects) == 10  # config, secret, servers, 3 services, scheduler, dashboard, 2 budgets
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)  # raises naming the field


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pods_are_locked_down_and_sized(layout: str) -> None:
    for name, template in _pods(_render(layout)):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        mounts = set()
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            mounts |= {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/var/lib/splice", "/tmp"} <= mounts, name
        assert all("emptyDir" in volume for volume in pod["volumes"]), name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_cluster_is_wired_together(layout: str) -> None:
    objects = _render(layout)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    (servers,) = _by_kind(objects, "StatefulSet")
    assert ("Service", servers["spec"]["serviceName"]) in names
    container = servers["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/splice/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/splice/ping"
    env = {v["name"]: v for v in container["env"]}
    assert env["SPLICE_SERVER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["SPLICE_ADVERTISE"]["value"] == "http://$(POD_IP):17010"
    assert servers["spec"]["template"]["spec"]["initContainers"][0]["args"] == ["migrate"]
    schedulers = [o for o in objects if o["kind"] == "Deployment" and "scheduler" in o["metadata"]["name"]]
    assert schedulers[0]["spec"]["replicas"] == 2
    for _, template in _pods(objects):
        for c in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            for source in c["envFrom"]:
                ref = source.get("configMapRef") or source["secretRef"]
                assert ("ConfigMap" if "configMapRef" in source else "Secret", ref["name"]) in names
    templates = [t["metadata"]["labels"] for _, t in _pods(objects)]
    for service in _by_kind(objects, "Service"):
        assert any(service["spec"]["selector"].items() <= labels.items() for labels in templates), service
    for budget in _by_kind(objects, "PodDisruptionBudget"):
        wanted = budget["spec"]["selector"]["matchLabels"]
        assert any(wanted.items() <= labels.items() for labels in templates), budget


def test_the_second_cluster_has_its_own_names_odb_and_redis() -> None:
    base, blue = _render("base"), _render("second-cluster")
    base_names = {o["metadata"]["name"] for o in base}
    blue_names = {o["metadata"]["name"] for o in blue}
    assert not base_names & blue_names  # both can live in one namespace
    assert all(name.startswith("blue-") for name in blue_names)

    def settings(objects: list[dict[str, Any]]) -> dict[str, str]:
        (config,) = _by_kind(objects, "ConfigMap")
        (secret,) = _by_kind(objects, "Secret")
        return {**config["data"], **secret["stringData"]}

    first, second = settings(base), settings(blue)
    for key in ("SPLICE_ODB", "SPLICE_REDIS", "SPLICE_CLUSTER_NAME", "SPLICE_SECRET_KEY", "SPLICE_ADMIN_TOKEN"):
        assert first[key] != second[key], key
    assert second["SPLICE_DASHBOARD_ADMIN"] == "http://blue-splice-servers:17010"
    assert ("Service", "blue-splice-servers") in {(o["kind"], o["metadata"]["name"]) for o in blue}
    assert "SPLICE_DASHBOARD_PASSWORD" in second  # what the overlay does not patch stays the base's
    # the selectors of one cluster never match the other's pods
    for service in _by_kind(blue, "Service"):
        assert service["spec"]["selector"]["splice.dev/cluster"] == "blue"


def test_the_renderer_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nreplicas: [{name: x, count: 3}]\n")
    with pytest.raises(ValueError, match="replicas"):
        _renderer().render(tmp_path)
