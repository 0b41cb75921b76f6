"""Random-access byte sources for the media probes.

The probes never see a whole object: they ask for a few ranges (box headers, the `moov` box, the first
blocks of an image). `RangeReader` is that one capability, so the same probe runs over an S3 ranged GET
(`Range: bytes=offset-(offset+length-1)`), a local file or bytes already in memory.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol, Self


class RangeReader(Protocol):
    """A sized byte source read by absolute offset.

    `read` returns exactly `length` bytes, fewer only when the range runs past the end (`size`).
    """

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


class BytesReader:
    """A `RangeReader` over bytes already in memory (tests, small uploads)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        return self._data[offset : offset + length]


class FileReader:
    """A `RangeReader` over a local file; seeks, so only the requested ranges are read from disk.

    Use as a context manager (or call `close`) so the file handle is released.
    """

    def __init__(self, path: str | Path) -> None:
        self._file: BinaryIO = Path(path).open("rb")  # noqa: SIM115 - closed by close()/__exit__
        self._size = self._file.seek(0, 2)

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be non-negative")
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
