"""The catch-up's floor: the one rule that lets it never skip an execution.

The floor F says: every execution of the workflow with an id ≤ F is finished
and recorded by smokesignal (or no longer in n8n). A catch-up round reads
n8n's executions with ids above F in id order, records every finished one it
has not recorded yet — wherever it is in the range — and then moves F over
the longest prefix of ids that are finished, recorded and settled. An
unfinished execution stops F right there, however many later ids finish before
it: when it finishes, the next round still reads it. Ids absent from n8n
(other workflows, hard-deleted rows) do not stop F: they are not in the range.

"Settled" covers the one case an id order cannot: n8n takes an id from a
sequence before its INSERT commits, so for a moment a smaller id can be
invisible while a larger one is visible. F never passes an execution created
less than N8N_CATCHUP_SETTLE_S ago, so a smaller id would have to stay
uncommitted that long (n8n's insert is one short statement).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FINISHED_STATUSES = frozenset({"success", "error", "canceled", "crashed"})


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One n8n execution as the catch-up sees it."""

    id: int
    status: str
    deleted: bool = False  # soft-deleted in n8n: nothing to wait for
    settled: bool = True  # created at least N8N_CATCHUP_SETTLE_S ago

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


def to_record(rows: Iterable[SourceRow], recorded: set[int]) -> list[int]:
    """Finished executions not recorded yet, anywhere in the range (ids ascending)."""
    return [row.id for row in rows if row.finished and not row.deleted and row.id not in recorded]


def advance_floor(floor: int, rows: Iterable[SourceRow], recorded: set[int]) -> int:
    """The new floor after a round; `rows` are the ids above `floor`, ascending."""
    for row in rows:
        done = row.deleted or (row.finished and row.id in recorded)
        if not (done and row.settled):
            break
        floor = row.id
    return floor
