"""Ingest memory and throughput: a provider video streamed into S3 by the real ingest code.

Three processes, so each is measured alone: the provider simulator (`kling-pipeline simulate`), a moto
S3 server, and the ingest worker (this file with `--worker`), which runs `open_download` →
`MediaStore.store_video` exactly as the ingest Lambda does. The worker reports its peak RSS while the
ingest runs (the kernel's high-water mark, reset at the start) against the RSS it had with everything
imported and its clients built (its floor), so the difference is what the download costs. Like the
baseline's `head_bucket`, the worker opens one download and reads its first chunk before the floor, so
the timed ingest pays no first-use import (httpcore, loaded lazily for cold starts; compiled from source
where bytecode is not cached). Nothing else runs in the timed section (no sampler thread, no tracemalloc:
it taxes every allocation, and the baseline runs without it).
The baseline, in the same run: the same bytes, downloaded to local disk first, uploaded by boto3's own
`upload_file` (its default TransferConfig) to the same moto server, in a process built the same way; the
ingest's time is reported as a ratio to it. Pairs alternate which side runs first, and each side reports
the CPU seconds it used and those the simulator and moto used meanwhile (read from /proc), so a ratio
can be told apart from the load the neighbours put on the machine.
Run: `make bench` (or `.venv/bin/python -m bench.ingest_memory`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from kling_pipeline.store.media import PART_SIZE, PARTS_IN_FLIGHT

MIB = 1024 * 1024
RESULTS = Path(__file__).parent / "results"
BUCKET = "bench-media"
SIM_KEY = "sim-kling3api-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_mib() -> float:
    """Current resident set size, not the lifetime peak."""
    return _status_mib("VmRSS")


def _process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) another process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeerCpu:
    """CPU seconds the simulator and moto (their pids in BENCH_PEER_PIDS) use during a timed section."""

    def __init__(self) -> None:
        names = ("simulator", "moto")
        pids = os.environ.get("BENCH_PEER_PIDS", "")
        self._pids = dict(zip(names, (int(pid) for pid in pids.split(",") if pid), strict=False))
        self.used: dict[str, float] = {}

    def __enter__(self) -> PeerCpu:
        self._before = {name: _process_cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = {
            f"{name}_cpu_seconds": round(_process_cpu_seconds(pid) - self._before[name], 2)
            for name, pid in self._pids.items()
        }


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PeakRss:
    """The peak RSS while the ingest runs, from the kernel's own high-water mark (VmHWM), reset on entry
    (`/proc/self/clear_refs`, Linux ≥ 4.0): every spike counts, however short, and nothing runs beside
    the ingest to sample it (the baseline has no sampler either)."""

    def __enter__(self) -> PeakRss:
        Path("/proc/self/clear_refs").write_text("5")
        self.peak = _status_mib("VmHWM")
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, _status_mib("VmHWM"))


def worker(url: str, key: str) -> dict[str, Any]:
    """The measured process: imports and clients first (the floor), then one streamed ingest."""
    from kling_pipeline.services.download import open_download
    from kling_pipeline.store.media import get_media_store

    media = get_media_store()
    media.presign_get(BUCKET, "warm-up", 60)  # build the client before measuring the floor
    with open_download(url) as chunks:  # and the download path (httpcore and its TLS context)
        next(iter(chunks))
    floor = _rss_mib()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    with PeerCpu() as peers, PeakRss() as rss, open_download(url) as chunks:
        stored = media.store_video(key, chunks, source="bench")
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    started = time.perf_counter()
    with open_download(url) as chunks:  # after the ingest: the provider side alone, for reference
        for _ in chunks:
            pass
    download_only = time.perf_counter() - started
    return {
        "bytes": stored.bytes,
        "sha256": stored.sha256,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 2),
        **peers.used,
        "download_only_seconds": round(download_only, 2),
        "throughput_mib_s": round(stored.bytes / MIB / seconds, 1),
        "rss_floor_mib": round(floor, 1),
        "rss_peak_mib": round(rss.peak, 1),
        "rss_added_mib": round(rss.peak - floor, 1),
    }


def baseline(path: str, key: str) -> dict[str, Any]:
    """moto's own S3 upload path for the same bytes, from disk: boto3's `upload_file` (its default
    TransferConfig: 8 MiB multipart, 10 threads) in a process built like the worker."""
    from kling_pipeline.aws import s3

    client = s3()
    client.head_bucket(Bucket=BUCKET)  # build the client and its connection before timing
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    with PeerCpu() as peers:
        client.upload_file(path, BUCKET, key)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "cpu_seconds": round(_cpu_seconds() - cpu_before, 2), **peers.used}


def _run_worker(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest_memory", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _provider_video(sim_url: str, size: int) -> str:
    """A finished task at the simulated kling3api whose video is padded to `size` bytes."""
    httpx.put(
        f"{sim_url}/_sim/config", json={"output_pad_to_bytes": size, "generation_time_s": 0.2}
    ).raise_for_status()
    auth = {"Authorization": f"Bearer {SIM_KEY}"}
    body = {"type": "o3-std-text-to-video", "prompt": "benchmark", "duration": 5, "sound": False}
    created = httpx.post(f"{sim_url}/api/generate", json=body, headers=auth).json()
    task_id = created["data"]["task_id"]
    for _ in range(100):
        data = httpx.get(f"{sim_url}/api/status", params={"task_id": task_id}, headers=auth).json()["data"]
        if data["status"] == "SUCCESS":
            return str(data["response"][0])
        time.sleep(0.2)
    raise RuntimeError("the simulator did not finish the task")


def _download_to(url: str, path: str) -> str:
    """The provider's file on local disk (the baseline's input); its SHA-256."""
    digest = hashlib.sha256()
    with httpx.stream("GET", url, timeout=120) as response, open(path, "wb") as out:
        for chunk in response.iter_bytes(MIB):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def main(sizes_mib: list[int], repeats: int = 7) -> dict[str, Any]:
    bin_dir = Path(sys.executable).parent
    sim_port, aws_port = _free_port(), _free_port()
    sim_url, aws_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{aws_port}"
    processes = [
        subprocess.Popen(
            [str(bin_dir / "kling-pipeline"), "simulate", "--port", str(sim_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(aws_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "BUCKET_NAME": BUCKET,
        "LOCAL_ALLOW_HTTP_LOOPBACK": "1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "BENCH_PEER_PIDS": ",".join(str(process.pid) for process in processes),  # simulator, moto
    }
    try:
        _wait_http(f"{sim_url}/_sim/config")
        _wait_http(aws_url)
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=aws_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET)
        runs = []
        for size in sizes_mib:
            url = _provider_video(sim_url, size * MIB)
            key = f"outputs/bench/video-{size}mib.mp4"
            with tempfile.NamedTemporaryFile(suffix=".mp4") as local:
                provider_sha256 = _download_to(url, local.name)
                bases, ingests = [], []
                for repeat in range(repeats):  # in pairs, so load from neighbours hits both alike
                    base_args = ("--baseline", local.name, f"baseline/video-{size}mib.mp4")
                    if repeat % 2:  # and each side goes first in every other pair
                        ingests.append(_run_worker(env, "--worker", url, key))
                        bases.append(_run_worker(env, *base_args))
                    else:
                        bases.append(_run_worker(env, *base_args))
                        ingests.append(_run_worker(env, "--worker", url, key))
            base = {
                name: statistics.median(b[name] for b in bases)
                for name in ("seconds", "cpu_seconds", "moto_cpu_seconds")
            }
            # Each ingest against the baseline run next to it: load from neighbours drifts over a run,
            # a pair sees the same load; the median of the pairs' ratios is the figure.
            ratios = [i["seconds"] / b["seconds"] for b, i in zip(bases, ingests, strict=True)]
            run = sorted(ingests, key=lambda r: float(r["seconds"]))[len(ingests) // 2]  # the median run
            run["rss_added_mib_max"] = max(r["rss_added_mib"] for r in ingests)
            run["ratios_to_upload_file"] = [round(ratio, 2) for ratio in ratios]
            stored = hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest()
            run.update(
                size_mib=size,
                sha256_matches_provider=run["sha256"] == provider_sha256 == stored,
                baseline_upload_file_seconds=base["seconds"],
                baseline_upload_file_cpu_seconds=base["cpu_seconds"],
                baseline_moto_cpu_seconds=base["moto_cpu_seconds"],
                ratio_to_upload_file=round(statistics.median(ratios), 2),
                # CPU of every process involved (median over the repeats): the worker, the simulator
                # serving the download, moto; the baseline has no simulator.
                cpu_seconds_all_processes={
                    "ingest": round(
                        statistics.median(
                            i["cpu_seconds"] + i["simulator_cpu_seconds"] + i["moto_cpu_seconds"]
                            for i in ingests
                        ),
                        2,
                    ),
                    "upload_file": round(
                        statistics.median(b["cpu_seconds"] + b["moto_cpu_seconds"] for b in bases), 2
                    ),
                },
            )
            runs.append(run)
            print(json.dumps(run), flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
    by_size = {run["size_mib"]: run for run in runs}
    return {
        "benchmark": "ingest_memory",
        "rss_added_growth_mib": round(
            by_size[max(by_size)]["rss_added_mib"] - by_size[min(by_size)]["rss_added_mib"], 1
        )
        if len(by_size) > 1
        else None,
        "python": sys.version.split()[0],
        "repeats": repeats,
        "statistic": "ratio: median over the repeats of ingest / the baseline run next to it (pairs "
        "alternate which side runs first); times: medians; RSS as measured in the median run, and its "
        "maximum",
        "part_size_mib": PART_SIZE // MIB,
        "parts_in_flight": PARTS_IN_FLIGHT,
        "download_chunks": "as received (httpcore reads up to 64 KiB)",
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=2, metavar=("URL", "KEY"))
    parser.add_argument("--baseline", nargs=2, metavar=("PATH", "KEY"))
    parser.add_argument("--sizes", default="64,512", help="MiB, comma separated")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
    elif args.baseline:
        print(json.dumps(baseline(*args.baseline)))
    else:
        result = main([int(size) for size in args.sizes.split(",")], args.repeats)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "ingest_memory.json").write_text(json.dumps(result, indent=2) + "\n")
