"""The id registry's own memory: the newest ids, as many as ``local_max`` (``MODERATOR_ID_MEMORY_MAX``)."""

from __future__ import annotations

import asyncio

import pytest

from moderator.core.registry import LOCAL_MAX, IdRegistry, Revision
from moderator.settings import Settings, SettingsError


def test_the_local_memory_keeps_the_newest_ids_up_to_its_size() -> None:
    ids = IdRegistry(local_max=3)
    asyncio.run(ids.record([(f"k{i}", Revision(f"r{i}", "t/0", i)) for i in range(5)]))
    # k0 and k1 fell out; a key recorded again moves to the newest end
    assert [r and r.revision for r in asyncio.run(ids.latest(["k0", "k1", "k2", "k4"]))] == [
        None,
        None,
        "r2",
        "r4",
    ]
    asyncio.run(ids.record([("k2", Revision("r2b", "t/0", 9)), ("k5", Revision("r5", "t/0", 10))]))
    assert [r and r.revision for r in asyncio.run(ids.latest(["k2", "k3", "k5"]))] == ["r2b", None, "r5"]
    assert IdRegistry()._local_max == LOCAL_MAX


def test_the_setting_reaches_the_worker_and_is_checked() -> None:
    settings = Settings.from_env({"MODERATOR_ID_MEMORY_MAX": "20000"})
    assert settings.id_memory_max == 20_000
    with pytest.raises(SettingsError, match="MODERATOR_ID_MEMORY_MAX"):
        Settings.from_env({"MODERATOR_ID_MEMORY_MAX": "0"}).check()
