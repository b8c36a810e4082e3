"""The `gpus` launcher's mechanics: which GPUs there are, handing them out to jobs (one job per
GPU at a time), and running each job in a fresh Python process whose `CUDA_VISIBLE_DEVICES`
names its GPU alone, set before the process starts, so CUDA never sees the others."""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from waebench.errors import UserError
from waebench.run.record import write_json

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")


def visible_gpus(devices: Sequence[int | str] | None = None) -> list[str]:
    """The GPUs to use: `devices` when given, else those in CUDA_VISIBLE_DEVICES when it is
    set, else every GPU `nvidia-smi` lists (without initialising CUDA in this process)."""
    if devices:
        return [str(d) for d in devices]
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return listing.stdout.split() if listing.returncode == 0 else []


class NoGpuError(UserError, ValueError):
    """`launcher=gpus` has no GPU to run on, or a bad number of jobs per GPU."""


class DevicePool:
    """Each device `jobs_per_gpu` times; `take()` blocks until a slot is free. Slots are
    handed out round-robin, so the first jobs land on different devices."""

    def __init__(self, devices: Sequence[str], jobs_per_gpu: int = 1) -> None:
        if not devices:
            raise NoGpuError(
                "launcher=gpus found no GPU (CUDA_VISIBLE_DEVICES is empty or nvidia-smi lists "
                "none). Name the devices with hydra.launcher.devices=[0,1], or run the jobs one "
                "after another with launcher=local."
            )
        if jobs_per_gpu < 1:
            raise NoGpuError(f"hydra.launcher.jobs_per_gpu={jobs_per_gpu} must be >= 1")
        self.size = len(devices) * jobs_per_gpu
        self._free: queue.Queue[str] = queue.Queue()
        for _ in range(jobs_per_gpu):
            for device in devices:
                self._free.put(device)

    def take(self) -> str:
        return self._free.get()

    def give_back(self, device: str) -> None:
        self._free.put(device)


def run_on_devices(
    jobs: Sequence[Job], pool: DevicePool, run: Callable[[Job, str], Result]
) -> list[Result]:
    """`run(job, device)` for every job, as many at once as the pool has slots; results in
    the order of `jobs`."""

    def run_with_slot(job: Job) -> Result:
        device = pool.take()
        try:
            return run(job, device)
        finally:
            pool.give_back(device)

    with ThreadPoolExecutor(max_workers=pool.size) as executor:
        return list(executor.map(run_with_slot, jobs))


def run_pinned_process(payload: bytes, device: str, run_dir: Path) -> tuple[Any, dict[str, Any]]:
    """Run `waebench.launch.gpu_worker` on `payload` (a pickled job) in a fresh process that
    sees GPU `device` only. Its output goes to `<run_dir>/launcher.log`; what it did goes to
    `<run_dir>/launcher.json`. Returns (the worker's pickled result or None, that record)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": device}
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # the numbering nvidia-smi shows
    with tempfile.TemporaryDirectory(prefix="waebench-job-") as tmp:
        job_file, result_file = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl"
        job_file.write_bytes(payload)
        worker = [sys.executable, "-m", "waebench.launch.gpu_worker"]
        command = [*worker, str(job_file), str(result_file)]
        record: dict[str, Any] = {"cuda_visible_devices": device, "started": time.time()}
        with open(run_dir / "launcher.log", "ab") as output:
            process = subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        record.update(ended=time.time(), exit_code=process.returncode)
        seen = Path(tmp) / "seen.json"
        if seen.is_file():
            record["seen_by_job"] = json.loads(seen.read_text())
        result = result_file.read_bytes() if result_file.is_file() else None
    write_json(run_dir / "launcher.json", record)
    return result, record
