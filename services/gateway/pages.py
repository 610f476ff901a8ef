"""The dashboard's HTML pages, with their shared parts included.

The pages share markup (the filter form's fields); it is written once, in
`static/partials/`, and a page names it with `<!-- include NAME.html -->`. There is
no build step: the gateway substitutes the includes when it serves a page, so the
page is complete (labels, i18n keys) before any script runs.
"""

from __future__ import annotations

import re
from pathlib import Path

PARTIALS = "partials"
# Only plain names inside partials/: a page cannot reach outside it.
INCLUDE = re.compile(r"^([ \t]*)<!-- include ([\w-]+\.html) -->$", re.MULTILINE)


def render_page(static_dir: Path, name: str) -> str | None:
    """The page `name` of `static_dir` with its includes in place; None if it is missing."""
    path = static_dir / name
    if not path.is_file():
        return None

    def include(match: re.Match[str]) -> str:
        indent, partial = match.group(1), match.group(2)
        text = (static_dir / PARTIALS / partial).read_text(encoding="utf-8")
        # Indented like the include line, so the served page reads as written.
        return "\n".join(indent + line if line else line for line in text.rstrip("\n").split("\n"))

    return INCLUDE.sub(include, path.read_text(encoding="utf-8"))
