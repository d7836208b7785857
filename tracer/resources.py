"""Where syspath's own files are: the BPF sources (probes/) and the scenarios
(scripts + narration), found the same way in a checkout and in an installed wheel.

In the repository they are the top-level folders probes/ and scenarios/; the wheel
ships them inside the package as tracer/probes and tracer/scenarios (pyproject.toml
maps them), read through importlib.resources.
"""
from __future__ import annotations

import functools
import importlib.util
import sys
from importlib import resources
from pathlib import Path

import tracer
from tracer.errors import SyspathError

CHECKOUT = Path(__file__).resolve().parent.parent


@functools.cache
def _data_dir(name: str) -> Path:
    """tracer/NAME in an installed wheel, else NAME/ beside the package in a checkout."""
    bundled = resources.files(tracer) / name
    if bundled.is_dir():
        return Path(str(bundled))
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / name).is_dir():
        return CHECKOUT / name
    raise SyspathError(f"syspath is installed without its {name}/ folder; reinstall it (sudo make setup)")


def probes_dir() -> Path:
    return _data_dir("probes")


def scenario_dir() -> Path:
    return _data_dir("scenarios")


def scenario_path(script: str) -> Path:
    """A scenario script, run as a file so that it imports stepping.py beside it."""
    return scenario_dir() / script


def version() -> str:
    """The installed distribution's version; the package's own in a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version("syspath")
    except metadata.PackageNotFoundError:
        return tracer.__version__


SCENARIOS_PACKAGE = "tracer.scenarios"


def bind_scenarios_package() -> None:
    """tracer.scenarios is the wheel's package, or this checkout's scenarios/ folder: bound to
    the folder found above, so that a checkout never imports another one's lessons (and a
    checkout run from PYTHONPATH, as in an arm64 guest, imports its own)."""
    if SCENARIOS_PACKAGE in sys.modules:
        return
    folder = scenario_dir()
    spec = importlib.util.spec_from_file_location(SCENARIOS_PACKAGE, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {SCENARIOS_PACKAGE} from {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[SCENARIOS_PACKAGE] = module
    spec.loader.exec_module(module)
