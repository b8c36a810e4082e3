"""Forward + backward time and peak memory of each latent regularizer on a batch of codes.

    python benchmarks/regularizer_speed.py [--batch-sizes 64 128 ... 4096] [--latent-dims 8 64]
        [--regularizers mmd sliced ...] [--threads 1] [--device cpu]

Each regularizer is built from its config (`conf/regularizer/<name>.yaml`, as
`regularizer=<name>` would build it); `mmd_one_block` is the MMD with a single block
(the n x n kernel matrices held at once), to show what the blockwise sums save.
Time: the median over repeats (at least 3, or 1 s). Peak memory: on CUDA,
torch.cuda.max_memory_allocated; on CPU (Linux), the rise of the process's peak resident
set (VmHWM, reset before each measurement through /proc/self/clear_refs), with glibc told
to serve every block of 64 KiB or more by mmap, so that freed tensors leave the resident
set at once instead of staying cached in the heap.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from waebench.prior import GaussianPrior
from waebench.regularizers import Codes

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
REGULARIZERS = {
    "mmd": [],
    "mmd_one_block": ["regularizer=mmd", "regularizer.block_size=1000000"],
    "sinkhorn": [],
    "sliced": [],
    "w2_gaussian": [],
    "w2_gaussian_per_sample": [],
    "kl": [],
    "gan": [],
}


def build(name: str, latent_dim: int):
    overrides = REGULARIZERS[name] or [f"regularizer={name}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"model.latent_dim={latent_dim}"])
    return instantiate(cfg.regularizer)


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


LIBC = ctypes.CDLL("libc.so.6")


def return_freed_memory_to_the_system() -> None:
    """glibc mallopt(M_MMAP_THRESHOLD, 64 KiB): a fixed threshold also turns off glibc's
    dynamic threshold, which would otherwise move large freed blocks into the heap."""
    m_mmap_threshold = -3
    LIBC.mallopt(m_mmap_threshold, 64 * 1024)


class PeakMemory:
    """Bytes allocated at the peak of a `with` block, above what was in use at its start."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.bytes = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            LIBC.malloc_trim(0)  # give back the free heap left by earlier runs
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.start = proc_status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.start
        else:
            self.bytes = proc_status_kib("VmHWM") * 1024 - self.start


def forward_backward(regularizer, prior, n: int, device: torch.device) -> None:
    d = prior.latent_dim
    mean = torch.randn(n, d, device=device, requires_grad=True)
    if regularizer.gaussian_encoder:
        log_var = torch.full((n, d), -1.0, device=device, requires_grad=True)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        codes = Codes(z=z, mean=mean, log_var=log_var)
    else:
        codes = Codes(z=mean, mean=mean)
    regularizer(codes, prior).backward()
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(regularizer, prior, n: int, device: torch.device) -> float:
    forward_backward(regularizer, prior, n, device)  # warm-up
    times: list[float] = []
    while len(times) < 3 or (sum(times) < 1.0 and len(times) < 50):
        start = time.perf_counter()
        forward_backward(regularizer, prior, n, device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bytes(regularizer, prior, n: int, device: torch.device) -> int:
    forward_backward(regularizer, prior, n, device)  # warm-up
    with PeakMemory(device) as peak:
        forward_backward(regularizer, prior, n, device)
    return peak.bytes


def peak_bytes_in_a_fresh_process(cases, args) -> dict:
    """On CPU the peaks are measured in a child process that changes glibc's allocation
    policy before its first measurement: in this process, the heap left by the timing pass
    would blur them."""
    command = [sys.executable, __file__, "--peak-memory-only", "--device", "cpu"]
    command += ["--batch-sizes", *map(str, args.batch_sizes)]
    command += ["--latent-dims", *map(str, args.latent_dims)]
    command += ["--regularizers", *args.regularizers]
    if args.threads:
        command += ["--threads", str(args.threads)]
    child = subprocess.run(command, check=True, capture_output=True, text=True)
    peaks = json.loads(child.stdout.strip().splitlines()[-1])
    return {case: peaks[" ".join(map(str, case))] for case in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048, 4096]
    )
    parser.add_argument("--latent-dims", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--regularizers", nargs="+", default=list(REGULARIZERS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    unknown = set(args.regularizers) - set(REGULARIZERS)
    if unknown:
        parser.error(f"unknown regularizers {sorted(unknown)}; valid: {', '.join(REGULARIZERS)}")
    device = torch.device(args.device)
    if args.peak_memory_only:
        return_freed_memory_to_the_system()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = [
        (name, d, n)
        for d in args.latent_dims
        for name in args.regularizers
        for n in args.batch_sizes
    ]
    regularizers = {(name, d): build(name, d).to(device) for name, d, _ in cases}
    priors = {d: GaussianPrior(d) for d in args.latent_dims}

    def peak(case) -> int:
        return peak_bytes(regularizers[case[:2]], priors[case[1]], case[2], device)

    if args.peak_memory_only:
        print(json.dumps({" ".join(map(str, case)): peak(case) for case in cases}))
        return
    seconds = {c: median_seconds(regularizers[c[:2]], priors[c[1]], c[2], device) for c in cases}
    peaks = (
        peak_bytes_in_a_fresh_process(cases, args)
        if device.type == "cpu"
        else {case: peak(case) for case in cases}
    )
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()}")
    print(f"{'regularizer':<24}{'d':>4}{'batch':>7}{'fwd+bwd ms':>12}{'peak MiB':>10}")
    for case in cases:
        name, d, n = case
        peak_mib = max(peaks[case], 0) / 2**20
        print(f"{name:<24}{d:>4}{n:>7}{seconds[case] * 1e3:>12.2f}{peak_mib:>10.1f}")


if __name__ == "__main__":
    main()
