"""The device tool's `run` calls of the GPU study (docs/gpu.md), and their check:

    python benchmarks/gpu_calls.py          # each call's JSON and travelling size; exit 1 if
                                            # one breaks a limit of the tool (LIMITS)

A call sends the checkout (tracked files and untracked ones git does not ignore, as the
tool counts them) plus its `carry` paths: that must stay under 64 MiB. The carried paths
must exist and be git-ignored (else they would travel with every call), at most 8; the
command at most 2,000 characters; timeout_s 1 to 600. Call 1 unpacks the wheels, the
Fashion-MNIST files and the first part of the Inception weights and runs
`gpu_check.sh prepare` (calibration, page timing, the quick gpu tests: 200 s); call 2, made
at once after it (the machine stays warm 30 s), brings the rest and runs the study (480 s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20
LIMIT = 64 * MIB
LIMITS = {"command_chars": 2000, "carry_paths": 8, "timeout_s": 600}
START = "export WAEBENCH_CALL_STARTED=$(date +%s) PYTHONUNBUFFERED=1; "
CALLS = (
    {
        "carry": [".gpu-bundle/call1"],
        "timeout_s": 260,
        "command": START + "python3 benchmarks/gpu_bundle.py unpack .gpu-bundle/call1 && "
        'bash benchmarks/gpu_check.sh prepare "$OUT"',
    },
    {
        "carry": [".gpu-bundle/call2"],
        "timeout_s": 560,
        "command": START + "python3 benchmarks/gpu_bundle.py unpack .gpu-bundle/call2 && "
        'bash benchmarks/gpu_check.sh study "$OUT"',
    },
)


def path_size(path: Path) -> int:
    """Bytes of a file (a link: the link itself) or of every file under a folder."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_symlink() or p.is_file())


def checkout_files(repo: Path) -> list[Path]:
    """What travels with every call: tracked files and untracked ones git does not ignore,
    and a `shared/` folder inside the checkout."""
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    files = {repo / name for name in listed if name}
    if (repo / "shared").is_dir():
        files |= {p for p in (repo / "shared").rglob("*") if p.is_file()}
    return sorted(p for p in files if p.is_symlink() or p.is_file())


def checkout_size(repo: Path = REPO) -> int:
    return sum(path_size(p) for p in checkout_files(repo))


def ignored(repo: Path, path: str) -> bool:
    done = subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", path], check=False)
    return done.returncode == 0


def check_call(call: dict, repo: Path, checkout: int) -> tuple[int, list[str]]:
    """(bytes that travel, the limits the call breaks)."""
    problems = []
    if len(call["command"]) > LIMITS["command_chars"]:
        problems.append(f"command of {len(call['command'])} characters (at most 2000)")
    if len(call["carry"]) > LIMITS["carry_paths"]:
        problems.append(f"{len(call['carry'])} carry paths (at most 8)")
    if not 1 <= call["timeout_s"] <= LIMITS["timeout_s"]:
        problems.append(f"timeout_s={call['timeout_s']} (1 to 600)")
    size = checkout
    for carried in call["carry"]:
        if not (repo / carried).exists():
            problems.append(f"{carried} does not exist: `make gpu-bundle` first")
            continue
        if not ignored(repo, carried):
            problems.append(f"{carried} is not git-ignored: it would travel with every call")
        size += path_size(repo / carried)
    if size > LIMIT:
        problems.append(f"{size / MIB:.1f} MiB would travel (at most 64)")
    return size, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout that travels")
    args = parser.parse_args(argv)
    checkout = checkout_size(args.repo)
    print(f"checkout (tracked + untracked, not ignored): {checkout / MIB:.2f} MiB")
    failed = False
    for number, call in enumerate(CALLS, start=1):
        size, problems = check_call(call, args.repo, checkout)
        print(f"\ncall {number}: {size / MIB:.2f} MiB of 64 travel")
        print(json.dumps(call, indent=1))
        for problem in problems:
            print(f"  REFUSED: {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
