"""Header-only media probing (DESIGN.md §5 rules 5 and 8) and streaming MP4 verification for ingest.

Everything reads through a `RangeReader` (S3 ranged GET, local file, bytes) or a chunk stream and
looks only at headers, so a 200 MB video costs a few KB of reads.
"""

from kling_pipeline.domain.media.images import ImageFormat, ImageInfo, check_image, probe_image
from kling_pipeline.domain.media.readers import BytesReader, FileReader, RangeReader
from kling_pipeline.domain.media.verify import Mp4StreamVerifier, Mp4Summary, NotAnMp4
from kling_pipeline.domain.media.video import VideoContainer, VideoInfo, check_video, probe_video

__all__ = [
    "BytesReader",
    "FileReader",
    "ImageFormat",
    "ImageInfo",
    "Mp4StreamVerifier",
    "Mp4Summary",
    "NotAnMp4",
    "RangeReader",
    "VideoContainer",
    "VideoInfo",
    "check_image",
    "check_video",
    "probe_image",
    "probe_video",
]
