"""Settings and deploy cannot drift apart.

Every environment variable a service reads (the fields of its pydantic-settings class,
introspected, so a field added tomorrow counts) must be set explicitly for that
service in docker-compose and in Kubernetes: no silent reliance on a default. Nothing
stale may be set either, secrets must come from Secrets, and every value must parse
with the very settings class the service uses.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from pydantic import ValidationError, create_model

from shared.settings import CommonSettings, PollerSettings
from testkit.deploy_files import (
    ROLE_SETTINGS,
    SECRET_VARIABLES,
    app_containers,
    compose_app_services,
    compose_environment,
    container_environment,
    deployed_objects,
    env_names,
    kustomization_dirs,
    settings_classes,
)

ALL_SETTING_NAMES = set().union(*(env_names(cls) for cls in ROLE_SETTINGS.values()))
_CREDENTIALS_IN_URL = re.compile(r"://[^/@\s]+:[^/@\s]+@")


def settings_from(
    cls: type[CommonSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> CommonSettings:
    """Build `cls` from exactly `env`, the way the service does at start-up."""
    for name in list(os.environ):
        if name.upper() in ALL_SETTING_NAMES:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()


def assert_sets_exactly(role: str, where: str, names: set[str]) -> None:
    expected = env_names(ROLE_SETTINGS[role])
    missing = sorted(expected - names)
    stale = sorted(names - expected)
    assert not missing, (
        f"{where} ({role}) does not set {missing}: shared/settings.py reads them, give each "
        "an explicit value in deploy/docker-compose.yml and the Kubernetes ConfigMap/Secret"
    )
    assert not stale, f"{where} ({role}) sets {stale}, which no setting of {role} reads"


def test_every_settings_class_belongs_to_a_role() -> None:
    unmapped = [cls.__name__ for cls in settings_classes() if cls not in ROLE_SETTINGS.values()]
    assert not unmapped, (
        f"{unmapped} in shared/settings.py is used by no role in "
        "testkit/deploy_files.py ROLE_SETTINGS: map it, and deploy its variables"
    )


def test_every_role_is_deployed_in_compose() -> None:
    roles = {role for role, _ in compose_app_services().values()}
    assert roles == set(ROLE_SETTINGS), f"compose runs roles {sorted(roles)}"


def _compose_cases() -> list[Any]:
    return [
        pytest.param(name, role, service, id=name)
        for name, (role, service) in compose_app_services().items()
    ]


@pytest.mark.parametrize(("name", "role", "service"), _compose_cases())
def test_compose_sets_every_setting(
    name: str, role: str, service: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert role in ROLE_SETTINGS, f"compose service {name}: unknown role {role!r}"
    assert "env_file" not in service, f"{name}: configuration is spelled out in `environment`"
    env = compose_environment(service)
    assert_sets_exactly(role, f"compose service {name}", set(env))
    try:
        settings_from(ROLE_SETTINGS[role], env, monkeypatch)
    except ValidationError as exc:
        pytest.fail(f"compose service {name}: invalid settings\n{exc}")


def _kubernetes_cases() -> list[Any]:
    cases = []
    for directory in kustomization_dirs():
        objects = deployed_objects(directory)
        for role, container, workload in app_containers(objects):
            case_id = f"{directory.name}:{workload['metadata']['name']}/{container['name']}"
            cases.append(pytest.param(role, container, objects, id=case_id))
    return cases


def test_every_long_running_role_is_deployed_in_kubernetes() -> None:
    roles = {
        role
        for directory in kustomization_dirs()
        for role, _, _ in app_containers(deployed_objects(directory))
    }
    # migrate runs inside every service at start-up (advisory-locked); no Job needed.
    assert roles == set(ROLE_SETTINGS) - {"migrate"}, f"Kubernetes runs roles {sorted(roles)}"


@pytest.mark.parametrize(("role", "container", "objects"), _kubernetes_cases())
def test_kubernetes_sets_every_setting(
    role: str,
    container: dict[str, Any],
    objects: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert role in ROLE_SETTINGS, f"unknown role {role!r}"
    env, duplicates = container_environment(container, objects)
    assert not duplicates, f"defined more than once (the last source silently wins): {duplicates}"
    assert_sets_exactly(role, f"container {container['name']}", set(env))

    for name in sorted(SECRET_VARIABLES & set(env)):
        assert env[name].source.startswith("Secret/"), f"{name} comes from {env[name].source}"
    for name, value in env.items():
        if not value.source.startswith("Secret/"):
            assert not _CREDENTIALS_IN_URL.search(value.value), (
                f"{name} carries credentials but comes from {value.source}: move it to a Secret"
            )

    try:
        settings_from(ROLE_SETTINGS[role], {k: v.value for k, v in env.items()}, monkeypatch)
    except ValidationError as exc:
        pytest.fail(f"container {container['name']}: invalid settings\n{exc}")


def test_drift_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above fails for a field nobody deployed (guards the guard)."""
    with_new_field = create_model("WithNewField", __base__=PollerSettings, poller_new_knob=(int, 1))
    monkeypatch.setitem(ROLE_SETTINGS, "poller", with_new_field)
    name, (role, service) = next(
        (name, case) for name, case in compose_app_services().items() if case[0] == "poller"
    )
    with pytest.raises(AssertionError, match="POLLER_NEW_KNOB"):
        assert_sets_exactly(role, f"compose service {name}", set(compose_environment(service)))
