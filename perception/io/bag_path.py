"""Whether a path is a rosbag2 bag, without importing the bag library (the training loader and the source factory
ask this of every path)."""

from __future__ import annotations

from pathlib import Path


def is_bag(path: str | Path) -> bool:
    """A rosbag2 folder (has ``metadata.yaml``) or a bare ``.mcap``/``.db3`` storage file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").is_file()
    return path.is_file() and path.suffix in (".mcap", ".db3")
