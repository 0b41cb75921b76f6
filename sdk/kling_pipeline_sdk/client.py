"""`Client`: the synchronous client. `AsyncClient` (async_client.py) mirrors it method for method."""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from kling_pipeline_sdk import _core
from kling_pipeline_sdk.errors import ApiError, WaitTimeoutError
from kling_pipeline_sdk.models import (
    Delivery,
    Element,
    Estimate,
    Generation,
    Redelivery,
    UploadTicket,
    Usage,
)

ProgressCallback = Callable[[Generation], None]


class Client:
    """The kling-pipeline API. Configured by arguments, else `KLING_PIPELINE_URL` and
    `KLING_PIPELINE_API_KEY`. Use it as a context manager (or call `close()`)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = _core.settings(url, api_key, timeout_s, max_retries)
        self._api = httpx.Client(
            base_url=self.settings.url,
            headers=_core.headers(self.settings.api_key),
            timeout=timeout_s,
            transport=transport,
        )
        # Presigned S3 URLs: no API key may travel there.
        self._s3 = httpx.Client(timeout=httpx.Timeout(timeout_s, read=300.0), transport=transport)
        self._sleep: Callable[[float], None] = time.sleep

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._api.close()
        self._s3.close()

    # ---- transport ------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        safe = _core.is_safe(method, headers)
        attempt = 0
        while True:
            response: httpx.Response | None
            try:
                response = self._api.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError:
                response = None
                delay = _core.retry_delay(None, attempt, safe=safe)
                if delay is None or attempt >= self.settings.max_retries:
                    raise
            else:
                delay = _core.retry_delay(response, attempt, safe=safe)
                if delay is None or attempt >= self.settings.max_retries:
                    return _core.decode(response)
            self._sleep(delay)
            attempt += 1

    # ---- generations ----------------------------------------------------------------------------------

    def create(
        self, request: Mapping[str, Any] | None = None, *, idempotency_key: str | None = None, **fields: Any
    ) -> Generation:
        """Submit a generation (`mode=…, prompt=…`, or a request mapping); answers at once, `queued` or
        `submitted`. A key is generated when none is given, so retries never create twice."""
        answer = self._request(
            "POST",
            "/v1/generations",
            json=_core.body(request, fields),
            headers=_core.create_headers(idempotency_key),
        )
        return Generation.model_validate(answer)

    def get(self, generation_id: str) -> Generation:
        return Generation.model_validate(self._request("GET", f"/v1/generations/{generation_id}"))

    def list(
        self, *, status: str | None = None, limit: int | None = None, page_size: int = 50
    ) -> Iterator[Generation]:
        """Newest first, following `next_cursor` page by page; stops after `limit` items when given."""
        cursor: str | None = None
        seen = 0
        while True:
            params = _core.body({"status": status, "cursor": cursor, "limit": page_size}, {})
            page = self._request("GET", "/v1/generations", params=params)
            for item in page["items"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield Generation.model_validate(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, generation_id: str) -> Generation:
        return Generation.model_validate(self._request("POST", f"/v1/generations/{generation_id}/cancel"))

    def estimate(self, request: Mapping[str, Any] | None = None, **fields: Any) -> Estimate:
        """Quotes for a request (same fields as `create`); submits nothing."""
        return Estimate.model_validate(
            self._request("POST", "/v1/estimates", json=_core.body(request, fields))
        )

    def wait(
        self,
        generation_id: str,
        *,
        timeout_s: float = 900.0,
        poll_interval_s: float = 1.0,
        max_interval_s: float = 5.0,
        on_progress: ProgressCallback | None = None,
    ) -> Generation:
        """Poll until the generation is final (with a growing interval) and return it; `on_progress`
        gets every state seen. Raises `WaitTimeoutError` (carrying the last state) after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        interval = poll_interval_s
        while True:
            generation = self.get(generation_id)
            if on_progress is not None:
                on_progress(generation)
            if generation.done:
                return generation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(generation, timeout_s)
            self._sleep(min(interval, remaining))
            interval = min(interval * 1.5, max_interval_s)

    def download(self, generation: Generation | str, directory: str | Path = ".") -> builtins.list[Path]:
        """Stream every output into `directory` and check its SHA-256 against the record; returns the
        paths. A mismatch raises `ChecksumMismatchError` and leaves no file behind."""
        generation_id = generation if isinstance(generation, str) else generation.id
        fresh = self.get(generation_id)  # fresh presigned URLs
        target_dir = Path(directory)
        target_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, output in enumerate(_core.downloadable(fresh)):
            digest = _core.Digest(_core.output_path(target_dir, fresh, index, output), output)
            assert output.url is not None  # checked by downloadable()
            with self._s3.stream("GET", output.url) as response, digest.partial.open("wb") as sink:
                if not response.is_success:
                    raise ApiError(response.status_code, "download_failed", f"GET {output.s3_uri}")
                for chunk in response.iter_bytes(_core.CHUNK_BYTES):
                    digest.update(chunk)
                    sink.write(chunk)
            paths.append(digest.finish())
        return paths

    def upload(self, path: str | Path, *, content_type: str | None = None) -> str:
        """Send a local image or video to the stack's bucket; returns the `s3://` URI to use as input."""
        source = Path(path)
        kind = _core.content_type_for(source, content_type)
        ticket = UploadTicket.model_validate(
            self._request(
                "POST",
                "/v1/uploads",
                json={"filename": source.name, "content_type": kind, "size_bytes": source.stat().st_size},
            )
        )
        with source.open("rb") as handle:
            response = self._s3.post(
                ticket.url, data=ticket.fields, files={"file": (source.name, handle, kind)}
            )
        if not response.is_success:
            raise ApiError(response.status_code, "upload_rejected", response.text[:500])
        return ticket.s3_uri

    # ---- elements, webhooks, usage ----------------------------------------------------------------

    def create_element(
        self,
        name: str,
        frontal_image: str,
        reference_images: builtins.list[str],
        *,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Element:
        body = _core.body(
            {"name": name, "frontal_image": frontal_image, "reference_images": reference_images},
            {"description": description},
        )
        answer = self._request(
            "POST", "/v1/elements", json=body, headers=_core.create_headers(idempotency_key)
        )
        return Element.model_validate(answer)

    def get_element(self, element_id: str) -> Element:
        return Element.model_validate(self._request("GET", f"/v1/elements/{element_id}"))

    def list_elements(self, *, page_size: int = 50) -> Iterator[Element]:
        cursor: str | None = None
        while True:
            page = self._request(
                "GET", "/v1/elements", params=_core.body({"cursor": cursor, "limit": page_size}, {})
            )
            yield from (Element.model_validate(item) for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def delete_element(self, element_id: str) -> None:
        self._request("DELETE", f"/v1/elements/{element_id}")

    def deliveries(self, generation_id: str) -> builtins.list[Delivery]:
        page = self._request("GET", f"/v1/generations/{generation_id}/deliveries")
        return [Delivery.model_validate(item) for item in page["items"]]

    def redeliver(self, generation_id: str) -> Redelivery:
        return Redelivery.model_validate(
            self._request("POST", f"/v1/generations/{generation_id}/deliveries/redeliver")
        )

    def webhook_secret(self) -> str:
        """Your `whsec_…` secret, for `verify_webhook`."""
        return str(self._request("GET", "/v1/webhooks/secret")["secret"])

    def usage(self, month: str | None = None) -> Usage:
        """Budget, spend and reservations of a month (`YYYY-MM`, default the current one)."""
        return Usage.model_validate(
            self._request("GET", "/v1/usage", params=_core.body({"month": month}, {}))
        )
