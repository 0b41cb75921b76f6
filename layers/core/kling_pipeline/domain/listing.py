"""What a tenant may filter its generations by (`GET /v1/generations`): pure, so the store and the route
agree on one meaning. The created range is served by the index's sort key (`created_at#id`); the rest
are filters applied to each page read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kling_pipeline.domain.generation import Generation
from kling_pipeline.domain.request import Mode
from kling_pipeline.domain.status import Status


@dataclass(frozen=True)
class GenerationFilter:
    status: Status | None = None
    mode: Mode | None = None
    provider: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive

    def matches(self, generation: Generation) -> bool:
        return (
            (self.status is None or generation.status is self.status)
            and (self.mode is None or generation.mode is self.mode)
            and (self.provider is None or generation.provider == self.provider)
        )

    def sort_key_range(self) -> tuple[str | None, str | None]:
        """Bounds on the by-tenant index's sort key (`<created_at ISO>#<id>`), in the form it is stored."""
        return _iso(self.created_after), _iso(self.created_before)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()
