"""Build the message packages under interfaces/ into the running Python environment, when they are missing.

For installs that take ROS 2 from the kilted wheels (no system ROS, no colcon). On a system ROS 2 these packages
come from apt (ros-<distro>-vision-msgs) or colcon and this script finds them importable and does nothing.

Steps (see shared ROS2_NOTES): the wheels' exported CMake files hard-code the Python and numpy include paths of the
machine that built them, so those are rewritten to this environment's; then CMake configures, builds and installs
the package into ``sys.prefix``. Usage: ``python interfaces/build_interfaces.py [--force] [PACKAGE ...]``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This folder holds the message sources (interfaces/vision_msgs/msg/*.msg): keep it off the import path so that the
# source folder is never mistaken for the built package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
PACKAGES = ["vision_msgs"]


def importable(package: str) -> bool:
    """True when ``<package>.msg`` imports (the generated Python code and its C extension both load)."""
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError:
        return False
    return getattr(module, "__file__", None) is not None  # a folder of .msg files is a namespace package, not a build


def fix_exported_include_paths(prefix: Path) -> int:
    """Rewrite the hard-coded Python/numpy include dirs in the wheels' CMake export files; returns files changed."""
    import numpy

    python_inc = sysconfig.get_paths()["include"]
    numpy_inc = numpy.get_include()
    changed = 0
    for cmake_file in (prefix / "share").glob("*/cmake/*__rosidl_generator_pyExport.cmake"):
        text = cmake_file.read_text()
        new = re.sub(r"/opt/python/[^;\"]*?/include/python3\.\d+", python_inc, text)
        new = re.sub(r"/opt/python/[^;\"]*?/numpy/(?:_core|core)/include", numpy_inc, new)
        if new != text:
            cmake_file.write_text(new)
            changed += 1
    return changed


def build(package: str, prefix: Path, jobs: int) -> None:
    source = HERE / package
    if not (source / "package.xml").exists():
        raise SystemExit(f"build_interfaces: no package.xml in {source}")
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            raise SystemExit(f"build_interfaces: '{tool}' is required to build {package} (apt-get install cmake g++)")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    with tempfile.TemporaryDirectory(prefix=f"build_{package}_") as build_dir:
        configure = [
            "cmake", "-S", str(source), "-B", build_dir,
            f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCMAKE_INSTALL_PREFIX={prefix}",
            f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF", "-DCMAKE_BUILD_TYPE=Release",
        ]
        for cmd in (configure, ["cmake", "--build", build_dir, "-j", str(jobs)], ["cmake", "--install", build_dir]):
            print("build_interfaces:", " ".join(cmd[:4]), "...", flush=True)
            result = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                sys.stderr.write(result.stdout[-6000:])
                raise SystemExit(f"build_interfaces: '{' '.join(cmd[:3])}' failed for {package} (exit {result.returncode})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=PACKAGES)
    parser.add_argument("--force", action="store_true", help="build even when the package already imports")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--check", action="store_true", help="exit 1 when a package is missing, build nothing")
    args = parser.parse_args(argv)
    prefix = Path(sys.prefix)
    if args.check:
        missing = [p for p in args.packages if not importable(p)]
        if missing:
            print(f"build_interfaces: not importable: {', '.join(missing)}")
        return 1 if missing else 0
    for package in args.packages:
        if importable(package) and not args.force:
            print(f"build_interfaces: {package} is importable, nothing to build")
            continue
        fixed = fix_exported_include_paths(prefix)
        print(f"build_interfaces: building {package} into {prefix} ({fixed} CMake export files fixed)", flush=True)
        build(package, prefix, args.jobs)
        importlib.invalidate_caches()
        if not importable(package):
            raise SystemExit(f"build_interfaces: built {package} but '{package}.msg' still does not import")
        print(f"build_interfaces: {package} built and importable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
