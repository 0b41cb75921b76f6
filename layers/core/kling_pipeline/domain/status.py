"""Generation statuses and the one rule about them: they only move forward."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL

    def can_move_to(self, new: Status) -> bool:
        """Forward only; a terminal status never changes (a late result after cancel is ignored)."""
        return not self.is_terminal and new.rank > self.rank


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})
_RANK = {
    Status.QUEUED: 0,
    Status.SUBMITTED: 1,
    Status.PROCESSING: 2,
    Status.SUCCEEDED: 3,
    Status.FAILED: 3,
    Status.CANCELED: 3,
}
