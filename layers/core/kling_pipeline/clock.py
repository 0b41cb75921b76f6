"""The pipeline's one clock (UTC, timezone-aware), in a module of its own so code that only needs the
time (the callback handler, the stores) does not import the domain models."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
