"""Run many independent training jobs, a few at a time, each in its own process.

Benchmark tools (``tools/compare_*.py``) train one model per combination. A fresh process per
run keeps runs from sharing state (seeds, caches, thread pools) and makes each run's timing its
own; the machine's cores are split evenly between the runs that share it. A run that finished
leaves a result file behind and is skipped next time, so an interrupted sweep resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Job:
    name: str  # unique; also the name of its log file
    argv: tuple[str, ...]  # arguments after the Python executable
    result: Path  # written by the job when it succeeds
    key: tuple = ()  # what the job computes, for running it in this process


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def run_jobs(todo: Sequence[Job], jobs: int, log_dir: Path) -> list[str]:
    """Runs every job whose result file is missing, ``jobs`` at a time; returns the names of the
    jobs that failed (their output is in ``log_dir/<name>.log``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    pending = [job for job in todo if not job.result.is_file()]
    threads = threads_per_job(jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def run(job: Job) -> bool:
        with open(log_dir / f"{job.name}.log", "w") as log:
            code = subprocess.run(
                [sys.executable, *job.argv], env=env, stdout=log, stderr=subprocess.STDOUT
            ).returncode
        return code == 0 and job.result.is_file()

    with ThreadPoolExecutor(max(jobs, 1)) as pool:
        succeeded = list(pool.map(run, pending))
    return [job.name for job, ok in zip(pending, succeeded) if not ok]


def fresh_run_dir(path: Path) -> Path:
    """An empty folder for a run that has no result yet: leftovers of a killed attempt (e.g. a
    metrics.csv that Lightning's logger would append to) must not leak into the retry."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_result(path: Path, row: dict) -> None:
    """Writes a job's result atomically: a killed job leaves no half-written file that would
    count as done."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=2))
    os.replace(tmp, path)


def check_budget(rows: Sequence[dict], budget: dict, out: Path) -> None:
    """Refuses to mix results made with different settings in one table."""
    stale = sorted({json.dumps(r.get("budget")) for r in rows if r.get("budget") != budget})
    if stale:
        raise SystemExit(
            f"{out} holds runs made with other settings ({', '.join(stale)}; now "
            f"{json.dumps(budget)}): use another --out, or delete those runs"
        )


def sweep(todo: Sequence[Job], budget: dict, out: Path, jobs: int, run_here) -> list[dict]:
    """Runs every job whose result is missing: in this process with ``run_here(job.key)`` when
    ``jobs`` is 1, else ``jobs`` at a time in their own processes. Results made with settings
    other than ``budget`` are refused; returns every job's result, in order."""
    done = [json.loads(job.result.read_text()) for job in todo if job.result.is_file()]
    check_budget(done, budget, out)
    if jobs == 1:
        for job in todo:
            if not job.result.is_file():
                run_here(*job.key)
    else:
        failed = run_jobs(todo, jobs, out / "logs")
        if failed:
            raise SystemExit(f"failed runs (see {out}/logs): {', '.join(failed)}")
    rows = [json.loads(job.result.read_text()) for job in todo]
    check_budget(rows, budget, out)
    return rows


def mean_std(values, digits: int = 2) -> str:
    """``mean ± std`` of the values that are not None (std 0 for one value; – for none)."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"
