"""Who owns an object in the media bucket, decided by its key alone.

`inputs/<tenant>/…` belongs to that tenant; `uploads/…` to the tenant of its longest `UPLOAD_TENANTS`
prefix, else `UPLOAD_TENANT_ID`. An `s3://` input is accepted only from its owner, so no tenant — nor an
upload job under a broad default prefix — can feed another tenant's object to a provider.
"""

from __future__ import annotations

from kling_pipeline.config import get_settings, key_value_pairs

INPUTS_PREFIX = "inputs/"
UPLOADS_PREFIX = "uploads/"


def tenant_for(key: str) -> str:
    """The tenant of an object under uploads/."""
    settings = get_settings()
    mapping = key_value_pairs(settings.upload_tenants)
    matching = [prefix for prefix in mapping if key.startswith(prefix)]
    return mapping[max(matching, key=len)] if matching else settings.upload_tenant_id


def owner_of(key: str) -> str | None:
    if key.startswith(INPUTS_PREFIX):
        tenant, sep, rest = key.removeprefix(INPUTS_PREFIX).partition("/")
        return tenant if sep and tenant and rest else None
    if key.startswith(UPLOADS_PREFIX):
        return tenant_for(key)
    return None
