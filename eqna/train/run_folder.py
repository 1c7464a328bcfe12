"""One run per output folder: refusal of mixed runs, a lock against concurrent trainings,
and the config check that makes ``--resume`` continue the same run.

A folder holds one training: ``config.yaml`` (written first), ``logs/``, ``checkpoints/``,
``model.pt`` and the test tables. A non-empty folder is refused unless the run resumes it or
``--overwrite`` clears eqna's own files from it. ``.eqna.lock`` names the process that trains
into the folder; a lock whose process is gone (killed) is stale and taken over.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import yaml

LOCK = ".eqna.lock"
ARTEFACTS = (
    "config.yaml", "logs", "checkpoints", "model.pt", "test_metrics.md", "test_metrics.json",
    "tensorboard",
)  # fmt: skip
BUDGET_KEYS = ("training.max_time_minutes", "training.max_epochs", "training.num_threads")
"""What a resumed run may change: its budget (and the CPU threads it runs on)."""


class RunFolderError(ValueError):
    """The output folder cannot take this run (in use, holds another run, not writable)."""


def last_checkpoint(out: Path) -> Path:
    return out / "checkpoints" / "last.ckpt"


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two resolved configs, budget keys aside."""
    a, b = _flat(old), _flat(new)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in BUDGET_KEYS)
    return [f"{k}: {a.get(k)!r} in the folder, {b.get(k)!r} now" for k in keys]


def _with_defaults(saved: dict) -> dict:
    """A folder's config with the keys added to eqna since it was written at their defaults
    (as written if it no longer validates: the differences then say why)."""
    from eqna.train.config import ConfigError, config_from_dict

    try:
        return config_from_dict(saved).to_dict()
    except ConfigError:
        return saved


def check_resumable(out: Path, config: dict) -> Path:
    """The checkpoint to resume ``out`` from; refuses a folder without one or another config."""
    checkpoint = last_checkpoint(out)
    if not (out / "config.yaml").is_file() or not checkpoint.is_file():
        raise RunFolderError(
            f"{out}: --resume needs a run folder with config.yaml and {checkpoint.relative_to(out)}"
            " (none found: start the run without --resume)"
        )
    saved = _with_defaults(yaml.safe_load((out / "config.yaml").read_text()))
    differences = config_differences(saved, config)
    if differences:
        raise RunFolderError(
            f"{out}: --resume with a config that differs from {out / 'config.yaml'} (only "
            f"{', '.join(BUDGET_KEYS)} may change):\n  " + "\n  ".join(differences)
        )
    return checkpoint


def check_fresh(out: Path, overwrite: bool) -> None:
    """A new run needs an empty folder; ``overwrite`` removes an earlier run's files first."""
    present = sorted(p.name for p in out.iterdir() if p.name != LOCK) if out.is_dir() else []
    if not present:
        return
    if not overwrite:
        raise RunFolderError(
            f"{out}: folder is not empty ({', '.join(present[:6])}"
            f"{', ...' if len(present) > 6 else ''}); continue it with --resume, replace it with "
            "--overwrite, or choose another -o"
        )
    for name in ARTEFACTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_writable(out: Path) -> None:
    """Fail now, not after the last epoch, when checkpoints or model.pt cannot be written."""
    for folder in (out, out / "checkpoints"):
        probe = folder / ".eqna-write-test"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise RunFolderError(f"{folder}: not writable ({err.strerror})") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(out):`` holds ``out/.eqna.lock`` (pid and host) for the run's duration."""

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{os.getpid()} {socket.gethostname()}\n")
            return self
        raise RunFolderError(f"{self.path}: cannot take the run lock")

    def _take_over_if_stale(self) -> None:
        try:
            pid_text, host = self.path.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            pid, host = -1, socket.gethostname()  # unreadable: a writer died mid-line
        if host == socket.gethostname() and (pid < 0 or not _alive(pid)):
            self.path.unlink(missing_ok=True)  # the process that held it is gone
            return
        raise RunFolderError(
            f"{self.path.parent}: another training (pid {pid} on {host}) is writing this folder;"
            f" wait for it, or delete {self.path} if that process is gone"
        )

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
