"""What every benchmark report says about the machine it ran on, and the libraries it used.

The figures of a shared, noisy machine mean little without it: the CPU, the cores this process
may use, the memory, the load average when the run started, and the versions of the libraries
that do the work (the OpenSSL behind ``cryptography`` included).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

LIBRARIES = ("aiohttp", "cryptography", "msgpack", "pydantic", "pydantic-core", "plyvel")


def usable_cores() -> int:
    """The cores this process may run on (its affinity), not merely those the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _proc_field(path: str, names: tuple[str, ...]) -> str | None:
    """The value of the first ``name: value`` line of a /proc file with one of ``names``."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in names:
            return value.strip()
    return None


def machine_info() -> dict[str, Any]:
    memory_kb = _proc_field("/proc/meminfo", ("MemTotal",))
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "architecture": platform.machine(),
        "cpu_model": _proc_field("/proc/cpuinfo", ("model name", "Model", "Hardware")),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable_cores(),
        "memory_gb": round(int(memory_kb.split()[0]) / 1024**2, 1) if memory_kb else None,
        "temporary_directory": tempfile.gettempdir(),
    }


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        versions["openssl"] = backend.openssl_version_text()
    except (ImportError, AttributeError):
        versions["openssl"] = None
    return versions
