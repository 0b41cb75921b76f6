"""The providers' names, in a module of their own: the callback handler checks a name without importing
the request models."""

from __future__ import annotations

from enum import StrEnum


class ProviderName(StrEnum):
    """Here rather than in `providers`: requests pin a provider and prices are per provider, and the
    domain must not depend on the adapters."""

    KLING = "kling"
    EVOLINK = "evolink"
    KLING3API = "kling3api"
