"""Provenance of a training run, stored in every checkpoint's JSON: data files (size, SHA-256), git commit,
hardware and software versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Sequence

import torch

from perception.models.checkpoint import file_sha256


def data_files(paths: Sequence[str | Path], hash_limit: int = 512 << 20) -> list[dict]:
    """One entry per file (folders and bags are expanded): path, bytes and SHA-256 (files up to ``hash_limit``)."""
    entries = []
    for given in paths:
        root = Path(given)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            size = path.stat().st_size
            entries.append({"path": str(path), "bytes": size,
                            "sha256": file_sha256(path) if size <= hash_limit else None})
    return entries


def git_commit(cwd: str | Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding this package."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if sha.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}


def hardware() -> dict:
    """CPU, core count, torch version, threads, CUDA device when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info
