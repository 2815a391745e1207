"""bench.pipeline_micro's instruction count: callgrind's summary read right, a clear exit without valgrind."""

from __future__ import annotations

import pytest

from bench import pipeline_micro

CALLGRIND_TAIL = """==4480== Events    : Ir
==4480== Collected : 12046820153
==4480==
==4480== I   refs:      12,046,820,153
"""


def test_collected_instructions_reads_callgrinds_summary() -> None:
    assert pipeline_micro.collected_instructions(CALLGRIND_TAIL) == 12_046_820_153
    with pytest.raises(ValueError, match="Collected"):
        pipeline_micro.collected_instructions("==1== no summary here\n")


def test_without_valgrind_it_says_so_and_exits_69(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(pipeline_micro.shutil, "which", lambda name: None)
    assert pipeline_micro.main(["--instructions", "--records", "10", "--rounds", "1"]) == 69
    assert "needs valgrind" in capsys.readouterr().err


def test_rounds_below_one_are_refused(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        pipeline_micro.main(["--rounds", "0", "--no-doc"])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err
