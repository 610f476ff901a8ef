"""The Kubernetes manifests: valid against the API schemas (offline), complete in their
kustomizations, and consistent with each other (selectors, ports, volumes, credentials)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from testkit.deploy_files import (
    IMAGE_VOLUME_ROLES,
    K8S_BASE,
    K8S_DIR,
    K8S_PRODUCTION,
    KUBERNETES_VERSIONS,
    KUSTOMIZATION,
    OPERATOR_SECRETS,
    SECRETS_SCRIPT,
    app_containers,
    container_environment,
    crd_schemas,
    deployed_objects,
    find,
    generated_secrets,
    kustomization,
    kustomization_dirs,
    kustomize_objects,
    load_documents,
    manifest_files,
    parse_stages,
    patch_files,
    rendered_objects,
    workloads,
)


def validate(document: dict[str, Any], version: str) -> None:
    """Strict schema validation; an unknown kind/apiVersion is an error, not a warning."""
    where = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
    custom = CUSTOM_RESOURCE_SCHEMAS.get((document.get("apiVersion", ""), document.get("kind", "")))
    if custom is not None:  # an operator's resource: its vendored CRD schema
        errors = sorted(
            jsonschema.Draft7Validator(custom).iter_errors(document), key=lambda e: list(e.path)
        )
        assert not errors, f"{where}: " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors
        )
        return
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path)
        pytest.fail(f"{where} invalid for Kubernetes {version}: {path}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{where}: {exc.message}")


CUSTOM_RESOURCE_SCHEMAS = crd_schemas()


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return deployed_objects(K8S_BASE)


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def role_workload(
    objects: list[dict[str, Any]], role: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    matches = [(c, w) for r, c, w in app_containers(objects) if r == role]
    assert len(matches) == 1, f"expected one {role} container, found {len(matches)}"
    return matches[0]


# --- schemas and kustomize ----------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_manifest_validates_against_kubernetes_schema(path: Path, version: str) -> None:
    documents = load_documents(path)
    assert documents, f"{path} holds no manifest"
    for document in documents:
        validate(document, version)


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: p.name)
def test_kustomization_lists_every_manifest(directory: Path) -> None:
    resources = kustomization(directory).get("resources", [])
    assert len(resources) == len(set(resources)), "a resource is listed twice"
    listed_files = set()
    for entry in resources:
        target = (directory / entry).resolve()
        assert target.exists(), f"{KUSTOMIZATION} lists {entry}, which does not exist"
        if target.is_dir():
            assert (target / KUSTOMIZATION).exists(), f"{entry} is not a kustomization"
        else:
            listed_files.add(target)
    present = {p.resolve() for p in directory.iterdir() if p.suffix in (".yaml", ".yml")}
    present.discard((directory / KUSTOMIZATION).resolve())
    present -= patch_files()
    assert present == listed_files, (
        f"not listed: {sorted(p.name for p in present - listed_files)}; "
        f"listed but elsewhere: {sorted(str(p) for p in listed_files - present)}"
    )


def test_every_manifest_belongs_to_a_kustomization() -> None:
    owned = {p.parent.resolve() for p in K8S_DIR.rglob(KUSTOMIZATION)}
    orphans = [p for p in manifest_files() if p.parent.resolve() not in owned]
    assert not orphans, f"manifests outside any kustomization: {orphans}"


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: p.name)
def test_kustomize_build_renders_valid_objects(directory: Path) -> None:
    objects = rendered_objects(directory)
    if "patches" not in kustomization(directory):  # patches may delete objects
        assert len(objects) == len(kustomize_objects(directory))
    namespace = kustomization(directory)["namespace"]
    for obj in objects:
        validate(obj, KUBERNETES_VERSIONS[-1])
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == namespace, obj["metadata"]
        if obj["kind"] in ("Deployment", "StatefulSet"):
            for container in pod_spec(obj)["containers"]:
                assert ":" in container["image"], f"{container['image']}: pin a tag"


# --- workloads ----------------------------------------------------------------------------


def test_replica_counts(base: list[dict[str, Any]]) -> None:
    assert find(base, "Deployment", "etl")["spec"]["replicas"] == 2
    # Two pollers are safe: the persisted broadcast set makes claims exclusive.
    assert find(base, "Deployment", "poller")["spec"]["replicas"] == 2
    assert find(base, "Deployment", "gateway")["spec"]["replicas"] >= 2
    hpa = find(base, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_every_container_has_requests_and_limits(base: list[dict[str, Any]]) -> None:
    for workload in workloads(base):
        for container in pod_spec(workload)["containers"]:
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert set(resources.get(kind, {})) >= {"cpu", "memory"}, (
                    f"{workload['metadata']['name']}/{container['name']}: {kind} cpu and memory"
                )


def test_pods_run_unprivileged(base: list[dict[str, Any]]) -> None:
    for workload in workloads(base):
        name = workload["metadata"]["name"]
        pod_security = pod_spec(workload).get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("runAsUser", 0) != 0, name
        assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in pod_spec(workload)["containers"]:
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], name


def test_app_pods_run_as_the_image_user(base: list[dict[str, Any]]) -> None:
    image_user = parse_stages()[-1].all("USER")[-1].value[0]
    uid, _, gid = image_user.partition(":")
    for _, container, workload in app_containers(base):
        security = pod_spec(workload)["securityContext"]
        assert security["runAsUser"] == int(uid)
        assert security["runAsGroup"] == int(gid or uid)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, "a writable /tmp for a read-only root filesystem"


def test_gateway_probes_and_graceful_termination(base: list[dict[str, Any]]) -> None:
    container, workload = role_workload(base, "gateway")
    http_port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    env, _ = container_environment(container, base)
    assert int(env["GATEWAY_PORT"].value) == http_port
    assert env["GATEWAY_HOST"].value == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > float(
        env["GATEWAY_STARTUP_TIMEOUT_S"].value
    ), "the startup probe must outlast the gateway's own wait for its backends"
    # preStop keeps serving while endpoints drop the pod; the grace period must cover
    # it plus the time SSE streams take to close.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod_spec(workload)["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 30


def test_etl_grace_period_covers_its_shutdown(base: list[dict[str, Any]]) -> None:
    container, workload = role_workload(base, "etl")
    env, _ = container_environment(container, base)
    grace = pod_spec(workload)["terminationGracePeriodSeconds"]
    assert grace > float(env["ETL_SHUTDOWN_GRACE_S"].value) + 10


def test_probes_use_declared_ports(base: list[dict[str, Any]]) -> None:
    for workload in workloads(base):
        for container in pod_spec(workload)["containers"]:
            names = {p["name"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str):
                    assert port in names, f"{container['name']} {probe} port {port}"


def test_metrics_ports_match_the_configuration(base: list[dict[str, Any]]) -> None:
    for role in ("etl", "poller"):
        container, workload = role_workload(base, role)
        env, _ = container_environment(container, base)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert int(env[f"{role.upper()}_METRICS_PORT"].value) == ports["metrics"]
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ports["metrics"])


# --- wiring between objects -----------------------------------------------------------------


def test_selectors_match_their_pods(base: list[dict[str, Any]]) -> None:
    pods = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(base)]
    for workload in workloads(base):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert labels_match(selector, workload["spec"]["template"]["metadata"]["labels"])
    for obj in base:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        else:
            continue
        matched = [labels for labels in pods if labels_match(selector, labels)]
        assert matched, f"{obj['kind']}/{obj['metadata']['name']} selects no pods"


def test_every_deployment_has_a_disruption_budget(base: list[dict[str, Any]]) -> None:
    budgets = [o for o in base if o["kind"] == "PodDisruptionBudget"]
    for workload in workloads(base):
        if workload["kind"] != "Deployment":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [
            b for b in budgets if labels_match(b["spec"]["selector"]["matchLabels"], labels)
        ]
        assert len(covering) == 1, f"Deployment/{workload['metadata']['name']}"
        spec = covering[0]["spec"]
        # A budget must leave room to evict, or node drains hang.
        if "minAvailable" in spec:
            assert spec["minAvailable"] < workload["spec"]["replicas"]


def test_statefulsets_have_governing_services(base: list[dict[str, Any]]) -> None:
    for workload in workloads(base):
        if workload["kind"] == "StatefulSet":
            service = find(base, "Service", workload["spec"]["serviceName"])
            assert service["spec"]["clusterIP"] == "None", "a headless governing Service"
            assert workload["spec"]["volumeClaimTemplates"], "persistent storage"


def test_ingress_streams_server_sent_events(base: list[dict[str, Any]]) -> None:
    ingress = find(base, "Ingress", "gateway")
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    container, _ = role_workload(base, "gateway")
    env, _ = container_environment(container, base)
    heartbeat = float(env["HEARTBEAT_INTERVAL_S"].value)
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        # Long-lived streams: far longer than the heartbeat that keeps them busy.
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 10 * heartbeat
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = find(base, "Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_images_volume_is_shared_read_write_many(base: list[dict[str, Any]]) -> None:
    claims = set()
    for role in IMAGE_VOLUME_ROLES:
        container, workload = role_workload(base, role)
        env, _ = container_environment(container, base)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        mount = mounts[env["IMAGE_DIR"].value]
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
        claims.add(volume["persistentVolumeClaim"]["claimName"])
        assert mount.get("readOnly", False) is (role == "gateway")
    assert len(claims) == 1, f"etl and gateway must mount the same claim, got {claims}"
    claim = find(base, "PersistentVolumeClaim", claims.pop())
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def _secret(base: list[dict[str, Any]], name: str) -> dict[str, str]:
    data: dict[str, str] = find(base, "Secret", name)["stringData"]
    return data


def _check_backend_url(
    base: list[dict[str, Any]], url: str, scheme: str, credentials: str, user: str, password: str
) -> SplitResult:
    """`url` has `scheme`, the user and password of Secret `credentials`, and names a
    Service port of the bundled server."""
    parsed = urlsplit(url)
    secret = _secret(base, credentials)
    assert parsed.scheme == scheme
    assert (parsed.username, parsed.password) == (secret[user], secret[password])
    service = find(base, "Service", parsed.hostname or "")
    assert parsed.port in {p["port"] for p in service["spec"]["ports"]}
    return parsed


def test_backend_urls_match_the_bundled_servers(base: list[dict[str, Any]]) -> None:
    backends = _secret(base, "smokesignal-backends")
    database = _check_backend_url(
        base,
        backends["DATABASE_URL"],
        "postgresql",
        "postgres-credentials",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
    )
    assert database.path == f"/{_secret(base, 'postgres-credentials')['POSTGRES_DB']}"
    _check_backend_url(
        base,
        backends["AMQP_URL"],
        "amqp",
        "rabbitmq-credentials",
        "RABBITMQ_DEFAULT_USER",
        "RABBITMQ_DEFAULT_PASS",
    )


def test_no_secret_is_committed() -> None:
    """Credentials are generated at install time (deploy/k8s/secrets.sh), never committed."""
    for path in manifest_files():
        for obj in yaml.safe_load_all(path.read_text()):
            assert not (obj and obj.get("kind") == "Secret"), f"{path}: a committed Secret"


def _referenced_secrets(objects: list[dict[str, Any]]) -> set[str]:
    names = set()
    for workload in [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]:
        for container in pod_spec(workload)["containers"]:
            names |= {
                s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s
            }
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
    return names


@pytest.mark.parametrize("flavour", ["base", "production"])
def test_secrets_script_makes_every_referenced_secret(flavour: str) -> None:
    """Every Secret a pod needs is printed by secrets.sh (or, in production, made by an
    operator); a missing one keeps the pod in CreateContainerConfigError."""
    directory = K8S_BASE if flavour == "base" else K8S_PRODUCTION
    objects = rendered_objects(directory)
    made = {s["metadata"]["name"] for s in generated_secrets(flavour)}
    if flavour == "production":
        made |= set(OPERATOR_SECRETS)
    assert _referenced_secrets(objects) <= made, _referenced_secrets(objects) - made
    namespace = kustomization(directory)["namespace"]
    for secret in generated_secrets(flavour):
        validate(secret, KUBERNETES_VERSIONS[-1])
        assert secret["metadata"]["namespace"] == namespace


def test_generated_credentials_are_fresh_and_strong() -> None:
    first, second = generated_secrets("base"), generated_secrets("base")
    for one, other in zip(first, second, strict=True):
        for key, value in one["stringData"].items():
            if any(word in key for word in ("PASS", "TOKEN")):
                assert len(value) >= 32, f"{key}: too short"
                assert value != other["stringData"][key], f"{key}: not generated per run"


def test_secrets_script_takes_given_values() -> None:
    given = subprocess.run(
        [str(SECRETS_SCRIPT), "production"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_TOKEN": "given-token", "NAMESPACE": "other"},
    )
    (gateway,) = [
        s
        for s in yaml.safe_load_all(given.stdout)
        if s and s["metadata"]["name"] == "smokesignal-gateway"
    ]
    assert gateway["stringData"]["GATEWAY_TOKEN"] == "given-token"
    assert gateway["metadata"]["namespace"] == "other"
    usage = subprocess.run([str(SECRETS_SCRIPT)], capture_output=True, text=True, check=False)
    assert usage.returncode == 64 and "usage" in usage.stderr
