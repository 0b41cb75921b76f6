"""Real, playable H.264 MP4 files for the provider simulator, rendered once and cached on disk.

The simulator must hand out videos that every downstream step (ingest, checksums, duration probes, a
browser) treats exactly like a provider's output, so they are genuine MP4s encoded by ffmpeg (the binary
shipped by imageio-ffmpeg, which includes libx264) rather than canned bytes. Rendering costs up to a few
seconds for 4K, hence the on-disk cache keyed by every parameter; concurrent callers for the same file
wait for one render, and files appear atomically (temp file + rename) so a reader never sees half a file,
even across processes.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path

CACHE_DIR_ENV = "KLING_SIM_CACHE_DIR"

_locks_guard = threading.Lock()
_locks: dict[str, threading.Lock] = {}


def cache_dir() -> Path:
    """`$KLING_SIM_CACHE_DIR`, else ~/.cache/kling-pipeline/sim, else a temp dir when home is read-only."""
    configured = os.environ.get(CACHE_DIR_ENV)
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path.home() / ".cache" / "kling-pipeline" / "sim",
        Path(tempfile.gettempdir()) / "kling-sim",
    ]
    for candidate in candidates:
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise RuntimeError(f"no writable cache directory among {candidates}")


def ffmpeg_exe() -> str:
    """The ffmpeg binary from imageio-ffmpeg (imported lazily: it is a local-only dependency)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _format_seconds(duration_s: float) -> str:
    return f"{duration_s:.3f}".rstrip("0").rstrip(".")


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def make_mp4(width: int, height: int, duration_s: float, fps: int = 24, *, sound: bool = False) -> Path:
    """Path of a cached MP4 (H.264 yuv420p, faststart, optional AAC sine tone) with exactly these properties.

    Width and height must be even (yuv420p); every resolution the simulator derives from a quality and
    an aspect ratio is.
    """
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive and even, got {width}x{height}")
    if duration_s <= 0 or fps <= 0:
        raise ValueError("duration_s and fps must be positive")
    seconds = _format_seconds(duration_s)
    name = f"testsrc2-{width}x{height}-{seconds}s-{fps}fps-{'sound' if sound else 'mute'}.mp4"
    target = cache_dir() / name
    if target.exists():
        return target
    with _lock_for(name):
        if target.exists():  # another thread rendered it while we waited
            return target
        _render(target, size=f"{width}x{height}", seconds=seconds, fps=fps, sound=sound)
    return target


def _render(target: Path, *, size: str, seconds: str, fps: int, sound: bool) -> None:
    """Encode into a temp file beside the target, then rename: readers see all of the file or none."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=".mp4", dir=target.parent)
    os.close(fd)
    command = [ffmpeg_exe(), "-y", "-nostdin", "-v", "error"]
    command += ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    if sound:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    command += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", "-pix_fmt", "yuv420p"]
    if sound:
        command += ["-c:a", "aac", "-b:a", "64k", "-shortest"]
    command += ["-movflags", "+faststart", "-t", seconds, "-f", "mp4", tmp_name]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=300)  # noqa: S603 (fixed argv)
        os.replace(tmp_name, target)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"ffmpeg failed: {exc.stderr.decode(errors='replace').strip()}") from exc
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
