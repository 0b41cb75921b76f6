"""Header-only media probes and the streaming MP4 verifier, against real files made by ffmpeg.

ffmpeg (shipped by imageio-ffmpeg) is used here only, to make fixtures; the code under test never needs it.
"""

from __future__ import annotations

import random
import struct
import subprocess
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import pytest

from kling_pipeline.domain.media import (
    BytesReader,
    FileReader,
    ImageInfo,
    Mp4StreamVerifier,
    Mp4Summary,
    NotAnMp4,
    RangeReader,
    VideoInfo,
    check_image,
    check_video,
    probe_image,
    probe_video,
)
from kling_pipeline.errors import FieldIssue, InvalidInput

MiB = 1024 * 1024

# name -> (ffmpeg output args, file name); every video is testsrc, x264 ultrafast.
_VIDEOS: dict[str, tuple[list[str], str]] = {
    "mp4": (["-s", "1280x720", "-r", "24", "-t", "4", "--audio", "-movflags", "+faststart"], "main.mp4"),
    "mov": (["-s", "1280x720", "-r", "24", "-t", "4", "--audio-first"], "main.mov"),
    "moov_end": (["-s", "1280x720", "-r", "24", "-t", "4"], "moov_end.mp4"),
    "short": (["-s", "1280x720", "-r", "24", "-t", "2", "-movflags", "+faststart"], "short.mp4"),
    "small": (["-s", "640x360", "-r", "24", "-t", "4", "-movflags", "+faststart"], "small.mp4"),
    "fps30": (["-s", "1280x720", "-r", "30", "-t", "4", "-movflags", "+faststart"], "fps30.mp4"),
    "fps15": (["-s", "1280x720", "-r", "15", "-t", "4", "-movflags", "+faststart"], "fps15.mp4"),
}
# name -> (size, file name)
_IMAGES: dict[str, tuple[str, str]] = {
    "png": ("400x300", "ok.png"),
    "jpg": ("640x360", "ok.jpg"),
    "edge": ("300x750", "edge.png"),  # exactly 1:2.5 and 300 px: allowed
    "tiny": ("280x720", "tiny.png"),
    "wide": ("1000x300", "wide.jpg"),
    "webp": ("400x300", "img.webp"),
    "gif": ("400x300", "img.gif"),
}


def _video_command(ffmpeg: str, args: list[str], out: Path) -> list[str]:
    size, rate, seconds = args[1], args[3], args[5]
    rest = args[6:]
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}"]
    maps: list[str] = []
    if "--audio" in rest or "--audio-first" in rest:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
        maps = ["-map", "1:a", "-map", "0:v"] if "--audio-first" in rest else ["-map", "0:v", "-map", "1:a"]
        cmd += ["-c:a", "aac"]
    rest = [a for a in rest if not a.startswith("--")]
    return [
        *cmd,
        *maps,
        "-t",
        seconds,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        *rest,
        str(out),
    ]


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every fixture file, made in parallel by ffmpeg once per session."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    root = tmp_path_factory.mktemp("media")
    commands: dict[str, list[str]] = {}
    paths: dict[str, Path] = {}
    for name, (args, file_name) in _VIDEOS.items():
        paths[name] = root / file_name
        commands[name] = _video_command(ffmpeg, args, paths[name])
    for name, (size, file_name) in _IMAGES.items():
        paths[name] = root / file_name
        commands[name] = [ffmpeg, "-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc=size={size}"]
        commands[name] += ["-frames:v", "1", str(paths[name])]
    processes = {name: subprocess.Popen(cmd, stderr=subprocess.PIPE) for name, cmd in commands.items()}
    for name, process in processes.items():
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"ffmpeg failed for {name}: {err.decode()}"
    return paths


class CountingReader:
    """Wraps a RangeReader and records every read, to prove the probes stay on the headers."""

    def __init__(self, inner: RangeReader) -> None:
        self.inner = inner
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return self.inner.size

    @property
    def bytes_read(self) -> int:
        return sum(length for _, length in self.reads)

    def read(self, offset: int, length: int) -> bytes:
        data = self.inner.read(offset, length)
        self.reads.append((offset, len(data)))
        return data


def _top_level(data: bytes) -> list[tuple[str, int, int]]:
    """(type, offset, size) of each top-level box (32-bit sizes only: what ffmpeg writes here)."""
    boxes, pos = [], 0
    while pos < len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        boxes.append((kind.decode(), pos, size))
        pos += size
    return boxes


def _box(data: bytes, kind: str) -> tuple[int, int]:
    return next((offset, size) for name, offset, size in _top_level(data) if name == kind)


def _verify(data: bytes, chunk_size: int = 65536) -> Mp4Summary:
    verifier = Mp4StreamVerifier()
    for pos in range(0, len(data), chunk_size):
        verifier.feed(data[pos : pos + chunk_size])
    return verifier.finish()


def _jpeg_with_app_segments(jpeg: bytes, count: int) -> bytes:
    """Insert `count` max-size APP2 segments after SOI, pushing the SOF marker far back."""
    segment = b"\xff\xe2" + struct.pack(">H", 65535) + b"ICC_PROFILE\x00" + bytes(65533 - 12)
    return jpeg[:2] + segment * count + jpeg[2:]


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("name", "fmt", "width", "height"),
    [
        ("png", "png", 400, 300),
        ("jpg", "jpeg", 640, 360),
        ("webp", "webp", 400, 300),
        ("gif", "gif", 400, 300),
    ],
)
def test_probe_image_reads_format_and_size(
    media: dict[str, Path], name: str, fmt: str, width: int, height: int
) -> None:
    data = media[name].read_bytes()

    info = probe_image(BytesReader(data))

    assert info == ImageInfo(format=fmt, width=width, height=height, size_bytes=len(data))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["png", "jpg", "edge"])
def test_check_image_accepts_valid_images(media: dict[str, Path], name: str) -> None:
    with FileReader(media[name]) as reader:
        assert check_image(probe_image(reader), "first_frame") == []


def test_check_image_rejects_webp_and_gif_by_content(media: dict[str, Path]) -> None:
    for name, shown in (("webp", "WEBP"), ("gif", "GIF")):
        issues = check_image(probe_image(BytesReader(media[name].read_bytes())), "reference_images[0]")
        assert issues == [
            FieldIssue("reference_images[0]", f"image is {shown}; only JPG/JPEG or PNG images are accepted")
        ]


def test_check_image_rejects_small_image_with_actionable_message(media: dict[str, Path]) -> None:
    issues = check_image(probe_image(BytesReader(media["tiny"].read_bytes())), "first_frame")

    assert issues[0] == FieldIssue(
        "first_frame", "image is 280x720 px; width and height must be at least 300 px"
    )
    assert "aspect ratio 1:2.57" in issues[1].issue  # 280x720 is also too tall
    assert len(issues) == 2


def test_check_image_rejects_extreme_aspect_ratio(media: dict[str, Path]) -> None:
    issues = check_image(probe_image(BytesReader(media["wide"].read_bytes())), "end_frame")

    assert issues == [
        FieldIssue(
            "end_frame",
            "image is 1000x300 px (aspect ratio 3.33:1); the aspect ratio must be between 1:2.5 and 2.5:1",
        )
    ]


def test_check_image_rejects_oversized_file() -> None:
    info = ImageInfo(format="jpeg", width=1920, height=1080, size_bytes=11 * MiB)

    assert check_image(info, "first_frame") == [
        FieldIssue("first_frame", "image is 11.0 MB; the maximum is 10 MB")
    ]


@pytest.mark.parametrize(
    "data",
    [random.Random(1).randbytes(5000), b"", b"<html>Link expired</html>"],
    ids=["random", "empty", "html"],
)
def test_probe_image_rejects_non_images(data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        probe_image(BytesReader(data), field="first_frame")

    assert caught.value.details == [
        FieldIssue("first_frame", "image is not a JPEG or PNG file (unrecognised content)")
    ]


def test_probe_image_rejects_cut_short_png(media: dict[str, Path]) -> None:
    with pytest.raises(InvalidInput, match="corrupt PNG"):
        probe_image(BytesReader(media["png"].read_bytes()[:20]))


def test_probe_image_reads_only_the_first_block(media: dict[str, Path]) -> None:
    # Given a PNG followed by 5 MB (ignored after IEND): only its header should be read
    reader = CountingReader(BytesReader(media["png"].read_bytes() + bytes(5 * MiB)))

    assert probe_image(reader).width == 400

    assert reader.bytes_read <= 64 * 1024
    assert len(reader.reads) == 1


def test_probe_image_finds_sof_behind_large_app_segments(media: dict[str, Path]) -> None:
    # Given ~256 KiB of ICC segments before the JPEG's SOF marker, and 5 MB after the image
    data = _jpeg_with_app_segments(media["jpg"].read_bytes(), 4) + bytes(5 * MiB)
    reader = CountingReader(BytesReader(data))

    info = probe_image(reader)

    assert (info.format, info.width, info.height) == ("jpeg", 640, 360)
    assert reader.bytes_read <= 6 * 64 * 1024


def test_probe_image_gives_up_after_header_cap(media: dict[str, Path]) -> None:
    reader = CountingReader(BytesReader(_jpeg_with_app_segments(media["jpg"].read_bytes(), 40)))

    with pytest.raises(InvalidInput, match="header is longer than 2 MB"):
        probe_image(reader)
    assert reader.bytes_read <= 2 * MiB


# --------------------------------------------------------------------------- videos


def test_probe_video_reads_mp4_properties(media: dict[str, Path]) -> None:
    with FileReader(media["mp4"]) as reader:
        info = probe_video(reader)

    assert info.container == "mp4"
    assert (info.width, info.height, info.fps, info.codec) == (1280, 720, 24.0, "avc1")
    assert info.duration_s == pytest.approx(4.0, abs=0.05)
    assert info.size_bytes == media["mp4"].stat().st_size
    assert check_video(info, "video.url") == []


def test_probe_video_reads_mov_with_audio_track_first(media: dict[str, Path]) -> None:
    info = probe_video(BytesReader(media["mov"].read_bytes()))

    assert info.container == "mov"
    assert (info.width, info.height, info.fps, info.codec) == (1280, 720, 24.0, "avc1")
    assert check_video(info, "video.url") == []


def test_probe_video_handles_moov_at_end(media: dict[str, Path]) -> None:
    data = media["moov_end"].read_bytes()
    assert [kind for kind, _, _ in _top_level(data)][-1] == "moov"

    info = probe_video(BytesReader(data))

    assert (info.container, info.width, info.height, info.fps) == ("mp4", 1280, 720, 24.0)
    assert info.duration_s == pytest.approx(4.0, abs=0.05)


def test_probe_video_reads_only_headers_and_moov_of_a_50mb_file(
    media: dict[str, Path], tmp_path: Path
) -> None:
    # Given a real moov-at-end MP4 whose mdat is padded (sparsely) to make a 50 MB file
    data = media["moov_end"].read_bytes()
    mdat_at, mdat_size = _box(data, "mdat")
    moov_at, moov_size = _box(data, "moov")
    padding = 50 * MiB - len(data)
    path = tmp_path / "big.mp4"
    with path.open("wb") as out:
        out.write(data[:mdat_at] + struct.pack(">I", mdat_size + padding) + data[mdat_at + 4 : moov_at])
        out.seek(padding, 1)
        out.write(data[moov_at:])

    with FileReader(path) as file_reader:
        reader = CountingReader(file_reader)
        info = probe_video(reader)

    # Then: 16-byte box headers by seeking, then the moov payload: nothing else
    assert info.size_bytes == 50 * MiB
    assert (info.width, info.height, info.fps) == (1280, 720, 24.0)
    assert reader.bytes_read <= moov_size + 256
    assert len(reader.reads) <= 5
    assert all(offset < mdat_at + 16 or offset >= moov_at + padding for offset, _ in reader.reads)


def test_probe_video_handles_64_bit_and_to_eof_box_sizes(media: dict[str, Path]) -> None:
    # Given the mdat header rewritten as size==1 + 64-bit largesize (moov at end)...
    data = media["moov_end"].read_bytes()
    mdat_at, mdat_size = _box(data, "mdat")
    large = data[:mdat_at] + struct.pack(">I4sQ", 1, b"mdat", mdat_size + 8) + data[mdat_at + 8 :]
    # ...and a faststart file whose last box (mdat) says size==0: "to the end of the file"
    faststart = media["mp4"].read_bytes()
    last_at = _top_level(faststart)[-1][1]
    to_eof = faststart[:last_at] + struct.pack(">I", 0) + faststart[last_at + 4 :]

    # ...and a 64-bit 'ftyp' header, whose major brand is then past the first 16-byte read
    ftyp_size = _box(faststart, "ftyp")[1]
    large_ftyp = struct.pack(">I4sQ", 1, b"ftyp", ftyp_size + 8) + faststart[8:]

    for variant in (large, to_eof, large_ftyp):
        info = probe_video(BytesReader(variant))
        assert (info.width, info.height, info.fps) == (1280, 720, 24.0)
        assert _verify(variant).width == 1280


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("short", "video is 2.00 s long; it must be between 3 and 10 s"),
        ("small", "video is 640x360 px; width and height must be between 720 and 2160 px"),
        ("fps15", "video is 15 fps; the frame rate must be between 24 and 60 fps"),
    ],
)
def test_check_video_rejects_out_of_range_videos(media: dict[str, Path], name: str, expected: str) -> None:
    info = probe_video(BytesReader(media[name].read_bytes()), field="video.url")

    assert check_video(info, "video.url") == [FieldIssue("video.url", expected)]


def test_check_video_accepts_30_fps(media: dict[str, Path]) -> None:
    info = probe_video(BytesReader(media["fps30"].read_bytes()))

    assert info.fps == 30.0
    assert check_video(info, "video.url") == []


def test_check_video_limits_and_tolerances() -> None:
    ok = VideoInfo("mp4", 10.02, 1920, 1080, 23.976, 5 * MiB, "avc1")  # AAC priming, NTSC 24p

    assert check_video(ok, "v") == []
    assert check_video(replace(ok, size_bytes=250 * MiB), "v") == [
        FieldIssue("v", "video is 250.0 MB; the maximum is 200 MB")
    ]
    assert [i.issue for i in check_video(replace(ok, width=3840, height=2160, fps=None), "v")] == [
        "video is 3840x2160 px; width and height must be between 720 and 2160 px",
        "video frame rate could not be read; it must be between 24 and 60 fps",
    ]
    assert len(check_video(replace(ok, duration_s=10.5, fps=120.0), "v")) == 2


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda mp4, png: random.Random(2).randbytes(100_000), "not an MP4 or MOV file"),
        (lambda mp4, png: png, "not an MP4 or MOV file"),
        (lambda mp4, png: mp4[: len(mp4) // 2], "truncated"),
        (lambda mp4, png: mp4[: _box(mp4, "ftyp")[1]] + b"\x00\x00\x00\x08mdat", "no 'moov' box"),
    ],
    ids=["random", "png", "truncated", "no-moov"],
)
def test_probe_video_rejects_non_videos(media: dict[str, Path], make: object, message: str) -> None:
    data = make(media["mp4"].read_bytes(), media["png"].read_bytes())  # type: ignore[operator]

    with pytest.raises(InvalidInput, match=message) as caught:
        probe_video(BytesReader(data), field="video.url")

    assert caught.value.details[0].field == "video.url"
    assert caught.value.details[0].issue.startswith("video ")


# --------------------------------------------------------------------------- streaming verifier


@pytest.mark.parametrize("chunk_size", [1, 7, 65536])
def test_verifier_accepts_mp4_whatever_the_chunk_size(media: dict[str, Path], chunk_size: int) -> None:
    data = media["small"].read_bytes()

    summary = _verify(data, chunk_size)

    assert summary == Mp4Summary(
        duration_s=summary.duration_s,
        width=640,
        height=360,
        brand="isom",
        fps=24.0,
        codec="avc1",
        size_bytes=len(data),
    )
    assert summary.duration_s == pytest.approx(4.0, abs=0.05)


@pytest.mark.parametrize("name", ["mp4", "moov_end", "mov"])
def test_verifier_agrees_with_probe(media: dict[str, Path], name: str) -> None:
    data = media[name].read_bytes()
    probed = probe_video(BytesReader(data))

    summary = _verify(data, 7 if name == "moov_end" else 65536)

    assert (summary.width, summary.height, summary.duration_s) == (
        probed.width,
        probed.height,
        probed.duration_s,
    )
    assert summary.brand == ("qt  " if name == "mov" else "isom")


def test_verifier_accepts_huge_trailing_free_box_in_bounded_memory(media: dict[str, Path]) -> None:
    # Given a valid MP4 padded by a 64-bit 'free' box of 48 MiB, streamed in 1 MiB chunks
    data = media["small"].read_bytes()
    pad = 48 * MiB
    zeros = bytes(MiB)
    verifier = Mp4StreamVerifier()

    tracemalloc.start()
    try:
        verifier.feed(data)
        verifier.feed(struct.pack(">I4sQ", 1, b"free", pad + 16))
        for _ in range(pad // MiB):
            verifier.feed(zeros)
        summary = verifier.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (summary.width, summary.size_bytes) == (640, len(data) + 16 + pad)
    assert peak < MiB  # the moov of a small file and a few box headers, never the stream


def test_verifier_accepts_skip_and_free_boxes_between(media: dict[str, Path]) -> None:
    data = media["moov_end"].read_bytes()
    mdat_at, _ = _box(data, "mdat")
    padded = (
        data[:mdat_at] + struct.pack(">I4s", 1000, b"skip") + bytes(992) + data[mdat_at:] + b"\0\0\0\x08free"
    )

    assert _verify(padded, 4096).height == 720


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda mp4: mp4[:-100], "truncated: box 'mdat'"),
        (lambda mp4: mp4[: len(mp4) // 3], "truncated"),
        (lambda mp4: mp4 + b"\x00\x01\x02", "ends inside a box header"),
        (lambda mp4: mp4 + b"garbage!garbage!", "truncated"),
        (lambda mp4: mp4 + random.Random(3).randbytes(4096), "not a box|truncated|less than"),
        (lambda mp4: random.Random(4).randbytes(100_000), "not a box|not 'ftyp'|less than"),
        (lambda mp4: b"<!DOCTYPE html><html><body>Expired</body></html>", "not a box|not 'ftyp'"),
        (lambda mp4: b"", "empty"),
        (lambda mp4: mp4[: _box(mp4, "ftyp")[1]] + b"\x00\x00\x00\x08mdat", "no 'moov'"),
    ],
    ids=[
        "cut-end",
        "cut-third",
        "partial-header",
        "trailing-text",
        "trailing-random",
        "random",
        "html",
        "empty",
        "no-moov",
    ],
)
def test_verifier_rejects_broken_streams(media: dict[str, Path], make: object, message: str) -> None:
    data = make(media["small"].read_bytes())  # type: ignore[operator]

    with pytest.raises(NotAnMp4, match=message):
        _verify(data, 4096)


def test_verifier_rejects_stream_not_starting_with_ftyp(media: dict[str, Path]) -> None:
    data = media["small"].read_bytes()
    ftyp_size = _box(data, "ftyp")[1]

    with pytest.raises(NotAnMp4, match="starts with 'moov', not 'ftyp'"):
        _verify(data[ftyp_size:])


def test_verifier_caps_the_moov_buffer(media: dict[str, Path]) -> None:
    verifier = Mp4StreamVerifier(max_moov_bytes=1000)

    with pytest.raises(NotAnMp4, match=r"'moov' box is .* the limit is 1000"):
        verifier.feed(media["small"].read_bytes())


def test_not_an_mp4_is_invalid_input() -> None:
    assert issubclass(NotAnMp4, InvalidInput)
    assert NotAnMp4("x").code == "validation_error"


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for pos in range(0, len(data), size):
        yield data[pos : pos + size]


def test_verifier_fails_fast_before_the_end(media: dict[str, Path]) -> None:
    # A stream that is obviously not an MP4 is refused on the first chunk, so ingest can abort its upload
    verifier = Mp4StreamVerifier()
    chunks = _chunks(b"<html>" + bytes(10 * MiB), MiB)

    with pytest.raises(NotAnMp4):
        verifier.feed(next(chunks))
