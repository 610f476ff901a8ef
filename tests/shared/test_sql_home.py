"""Each service keeps its SQL in one module (issue 18): `services/<service>/queries.py`,
and `shared/queries.py` for the statements every service shares.

A fast, database-free check: parse every module under services/ and shared/ with `ast`
and fail, naming file:line, on a string (or f-string) that reads as an SQL statement
anywhere but its home, or that is handed straight to a query method (`execute`,
`fetch`, …: whatever it says, it is SQL). Docstrings are prose and are skipped.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.processes import REPO_ROOT

ROOTS = ("services", "shared")

# A statement's first words, case-insensitive. Each keyword needs the shape of SQL
# after it, so prose ("update failed", "drop-head", "LISTEN + catch-up") does not count.
_STATEMENT = re.compile(
    r"""\A\s*(?:
        SELECT\s+(?:\d|\{\}|[\w.]+\s*\(|\S.*?\bFROM\b)
      | INSERT\s+INTO\s
      | UPDATE\s+[\w."]+(?:\s+(?:AS\s+)?\w+)?\s+SET\s
      | DELETE\s+FROM\s
      | WITH\s+(?:RECURSIVE\s+)?[\w"]+(?:\s*\([^)]*\))?\s+AS\s*(?:NOT\s+)?(?:MATERIALIZED\s*)?\(
      | (?:CREATE|DROP)\s+(?:OR\s+REPLACE\s+|UNIQUE\s+|TEMP(?:ORARY)?\s+|MATERIALIZED\s+)*
            (?:TABLE|INDEX|FUNCTION|PROCEDURE|TRIGGER|DATABASE|VIEW|SCHEMA|EXTENSION|TYPE
              |SEQUENCE|ROLE)\s
      | (?:LISTEN|NOTIFY)\s+(?:"[^"]+"|\w+|\{\})\s*(?:,.*)?;?\s*\Z
      | SET\s+(?:LOCAL\s+|SESSION\s+)?[\w.]+\s*(?:=|TO\s)
      | TRUNCATE\s+(?:TABLE\s+)?[\w."]+
    )""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)

# asyncpg's methods whose first argument is a statement.
QUERY_METHODS = frozenset(
    {"execute", "executemany", "fetch", "fetchval", "fetchrow", "fetchmany", "cursor", "prepare"}
)

# Deliberate exceptions, each with its reason. Empty: nothing needs one today.
ALLOWED: dict[str, str] = {}


def looks_like_sql(text: str) -> bool:
    return _STATEMENT.match(text) is not None


def home_of(path: Path) -> Path | None:
    """The one module allowed to hold SQL for `path` (None: `path` is that module)."""
    parts = path.relative_to(REPO_ROOT).parts
    if parts[0] == "shared":
        home = REPO_ROOT / "shared" / "queries.py"
    elif len(parts) > 2:  # services/<service>/...
        home = REPO_ROOT / "services" / parts[1] / "queries.py"
    else:  # services/run.py and the like: no SQL of their own
        home = REPO_ROOT / "shared" / "queries.py"
    return None if path == home else home


def _docstrings(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _text(node: ast.expr) -> str | None:
    """A literal's text; an f-string's with `{}` for each field; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else "{}" for part in node.values
        )
    return None


def _query_literals(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Literals passed as the statement of `conn.execute(...)` and the like."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in QUERY_METHODS
            and node.args
            and (text := _text(node.args[0])) is not None
        ):
            yield node.args[0].lineno, text  # the string's line, as _strings says it


def _strings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every string literal with its line; an f-string's text with `{}` for each field."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for part in node.values:  # its pieces are judged as the whole, not alone
                skip.add(id(part))
            yield node.lineno, _text(node) or ""
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            yield node.lineno, node.value


def misplaced_sql() -> list[str]:
    found: list[str] = []
    for root in ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            home = home_of(path)
            if home is None:
                continue
            where = path.relative_to(REPO_ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=where)
            candidates = [(line, t) for line, t in _strings(tree) if looks_like_sql(t)]
            candidates += list(_query_literals(tree))
            for line, text in sorted(set(candidates)):
                if f"{where}:{line}" not in ALLOWED:
                    snippet = " ".join(text.split())[:60]
                    home_name = home.relative_to(REPO_ROOT).as_posix()
                    found.append(f"{where}:{line}: {snippet!r} (belongs in {home_name})")
    return found


def test_every_sql_statement_lives_in_its_services_queries_module() -> None:
    misplaced = misplaced_sql()
    assert not misplaced, "SQL outside its queries module:\n" + "\n".join(misplaced)


def test_every_allowed_exception_still_exists() -> None:
    """An allow-list entry whose string moved or went away must go too."""
    current = set()
    for root in ROOTS:
        for path in (REPO_ROOT / root).rglob("*.py"):
            where = path.relative_to(REPO_ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=where)
            current |= {f"{where}:{line}" for line, text in _strings(tree) if looks_like_sql(text)}
            current |= {f"{where}:{line}" for line, _text in _query_literals(tree)}
    assert set(ALLOWED) <= current


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1",
        "  select id FROM executions",
        "\n    WITH locked AS (\n SELECT id FROM executions)",
        "WITH RECURSIVE cameras AS (SELECT 1)",
        "INSERT INTO outbox (routing_key) VALUES ($1)",
        "UPDATE stage2_jobs j SET status = 'pending'",
        "DELETE FROM auth_sessions WHERE id_hash = $1",
        'CREATE DATABASE "{}"',
        "CREATE OR REPLACE FUNCTION f() RETURNS trigger",
        "DROP TRIGGER IF EXISTS t ON execution_entity",
        "LISTEN stage2_jobs",
        "NOTIFY outbox_events, 'x'",
        "SET LOCAL synchronous_commit = off",
        "set statement_timeout TO 0",
        "TRUNCATE executions",
    ],
)
def test_statements_are_recognised(text: str) -> None:
    assert looks_like_sql(text)


@pytest.mark.parametrize(
    "text",
    [
        "update:workflow",
        "drop-head",
        "LISTEN + catch-up against one n8n database",
        "update failed, retrying",
        "with the execution id",
        "create the database first",
        "Delete broadcast ids older than the look-back",
        "selected",
        "select a camera first",
        "set up the database first",
    ],
)
def test_prose_is_not_sql(text: str) -> None:
    assert not looks_like_sql(text)
