"""yamllint, with deploy/.yamllint.yaml, over every YAML file under deploy/."""

from __future__ import annotations

from pathlib import Path

import pytest
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

from testkit.deploy_files import DEPLOY_DIR, YAMLLINT_CONFIG

YAML_FILES = sorted(
    path
    for pattern in ("*.yaml", "*.yml")
    for path in DEPLOY_DIR.rglob(pattern)
    if path != YAMLLINT_CONFIG
)


@pytest.fixture(scope="module")
def config() -> YamlLintConfig:
    return YamlLintConfig(file=str(YAMLLINT_CONFIG))


def test_there_is_yaml_to_lint() -> None:
    names = {path.name for path in YAML_FILES}
    assert {"docker-compose.yml", "kustomization.yaml", "gateway.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY_DIR)))
def test_yaml_is_lint_free(path: Path, config: YamlLintConfig) -> None:
    problems = list(linter.run(path.read_text(), config, str(path)))
    assert not problems, "\n".join(
        f"{path.name}:{p.line}:{p.column}: {p.level}: {p.desc} ({p.rule})" for p in problems
    )


def test_the_config_rejects_ambiguous_booleans(config: YamlLintConfig) -> None:
    problems = list(linter.run("restart: no\n", config))
    assert [p.rule for p in problems] == ["truthy"]
