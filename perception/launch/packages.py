"""Where a package's files and executables are, as ``ros2 launch`` would find them, plus the pip-install case.

Search order for ``find-pkg-share`` / ``find-pkg-prefix``:
1. every prefix of ``AMENT_PREFIX_PATH`` that has ``share/<pkg>/package.xml`` (a colcon install or a sourced
   system ROS 2: the ament index);
2. this interpreter's prefix (``sys.prefix/share/<pkg>``: where a non-editable pip install puts ``data_files``);
3. the source checkout this code runs from, when its ``package.xml`` names the package (an editable install).

Executables (``node: {pkg, exec}``): ``<prefix>/lib/<pkg>/<exec>`` in the ament prefixes (colcon), else a
``console_scripts`` entry point named ``exec`` of the installed distribution ``pkg``, run with this interpreter
(``python -m module`` when the entry point is ``module:main``).
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path

from perception.launch.substitutions import LaunchError

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _package_name(package_xml: Path) -> str | None:
    match = re.search(r"<name>\s*([^<\s]+)\s*</name>", package_xml.read_text(errors="replace"))
    return match.group(1) if match else None


def _ament_prefixes(env: dict[str, str] | None = None) -> list[Path]:
    value = (env if env is not None else os.environ).get("AMENT_PREFIX_PATH", "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def candidate_prefixes(env: dict[str, str] | None = None) -> list[Path]:
    """The install prefixes searched, in order (the source checkout is handled separately)."""
    return [*_ament_prefixes(env), Path(sys.prefix)]


def find_package_share(package: str, env: dict[str, str] | None = None) -> Path:
    """The share directory of ``package`` (see the module docstring for the search order)."""
    for prefix in candidate_prefixes(env):
        share = prefix / "share" / package
        if (share / "package.xml").is_file():
            return share
    source_xml = SOURCE_ROOT / "package.xml"
    if source_xml.is_file() and _package_name(source_xml) == package:
        return SOURCE_ROOT
    searched = ", ".join(str(p / "share" / package) for p in candidate_prefixes(env))
    raise LaunchError(f"package '{package}' not found (searched {searched} and the source checkout {SOURCE_ROOT}); "
                      "source its install/setup.bash or pip install it")


def find_package_prefix(package: str, env: dict[str, str] | None = None) -> Path:
    share = find_package_share(package, env)
    return share if share == SOURCE_ROOT else share.parent.parent


def resolve_package(kind: str, package: str, env: dict[str, str] | None = None) -> str:
    """``kind`` is ``share`` or ``prefix``: the resolver that ``substitute`` calls."""
    return str(find_package_share(package, env) if kind == "share" else find_package_prefix(package, env))


def _entry_point(package: str, executable: str) -> metadata.EntryPoint | None:
    names = {package, package.replace("_", "-"), package.replace("-", "_")}
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for ep in dist.entry_points:
            if ep.group == "console_scripts" and ep.name == executable:
                return ep
    return None


def executable_command(package: str, executable: str, env: dict[str, str] | None = None) -> list[str]:
    """The argv that starts ``executable`` of ``package`` (see the module docstring)."""
    for prefix in _ament_prefixes(env):
        path = prefix / "lib" / package / executable
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)]
    ep = _entry_point(package, executable)
    if ep is not None:
        module, _, attr = ep.value.partition(":")
        attr = attr.strip()
        if attr == "main":
            return [sys.executable, "-m", module.strip()]
        return [sys.executable, "-c", f"import sys; from {module.strip()} import {attr}; sys.exit({attr}())"]
    raise LaunchError(f"executable '{executable}' of package '{package}' not found: no lib/{package}/{executable} "
                      f"under AMENT_PREFIX_PATH and no console script '{executable}' in an installed distribution "
                      f"'{package}' (is the package installed? `pip install -e .` after adding an entry point)")
