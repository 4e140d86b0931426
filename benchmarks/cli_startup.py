#!/usr/bin/env python3
"""Wall time of `./deploy.py --help` against `python -c pass` (goal: --help under 0.3 s).

Prints median seconds of N runs of each and their ratio; asserts nothing.
Usage: benchmarks/cli_startup.py [RUNS]
"""
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"


def median_seconds(argv: list[str], runs: int) -> float:
    """Median wall time of `runs` executions of argv."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    python = str(PYTHON if PYTHON.exists() else sys.executable)
    baseline = median_seconds([python, "-c", "pass"], runs)
    help_time = median_seconds([str(ROOT / "deploy.py"), "--help"], runs)
    print(f"python -c pass      : {baseline:.3f} s (median of {runs})")
    print(f"./deploy.py --help  : {help_time:.3f} s (median of {runs}; goal < 0.300 s)")
    print(f"ratio --help / pass : {help_time / baseline:.1f}x")


if __name__ == "__main__":
    main()
