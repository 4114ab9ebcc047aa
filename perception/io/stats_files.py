"""Reading the small JSON files that processes leave behind (stats, summaries), tolerating a missing file."""

from __future__ import annotations

import json
from pathlib import Path


def read_json(path: str | Path, default: dict | None = None) -> dict:
    """The parsed JSON object at ``path``; ``default`` (``{}``) when the file is missing or not valid JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return dict(default or {})
    return data if isinstance(data, dict) else dict(default or {})
