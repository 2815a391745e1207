"""docs/benchmarks.md can be reproduced from a fresh clone: no machine's paths in it, every command it
shows names a benchmark module and only flags that module accepts, and `make bench` runs the suite."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import DOC_FILE, REPO, Section, portable_args, write_section

DOC = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
COMMANDS = sorted(set(re.findall(r"`(python -m bench[\w.]* [^`]*)`", DOC)))


def test_no_machine_specific_paths() -> None:
    found = re.findall(r"(?<![\w.])/(?:work|home|tmp|Users|root|opt|mnt)/[^\s`)]*", DOC)
    assert not found, f"machine-specific paths in docs/benchmarks.md: {found}"


def test_portable_args_make_paths_relative_and_drop_the_default_doc() -> None:
    argv = [
        "--texts",
        "8",
        "--doc",
        str(DOC_FILE),
        "--classifier",
        str(REPO / "models" / "x"),
        "--doc=/elsewhere.md",
    ]
    assert portable_args(argv) == ["--texts", "8", "--classifier", "models/x", "--doc=/elsewhere.md"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_is_accepted(command: str) -> None:
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-m"]
    module = argv[2]
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for flag in (a.split("=")[0] for a in argv[3:] if a.startswith("--")):
        assert flag in proc.stdout, f"{module} has no {flag}"


def test_commands_were_found() -> None:
    modules = {shlex.split(c)[2] for c in COMMANDS}
    assert {"bench", "bench.model_path", "bench.overhead", "bench.latency", "bench.scale_out"} <= modules


def test_make_bench_runs_the_whole_suite_and_offers_a_quick_mode() -> None:
    make = (REPO / "Makefile").read_text()
    bench = re.search(r"^bench:.*\n\t(.+)$", make, re.M)
    quick = re.search(r"^bench-quick:.*\n\t(.+)$", make, re.M)
    assert bench and quick
    assert bench.group(1).split()[:3] == ["$(PY)", "-m", "bench"]
    assert "--quick" in quick.group(1)
    assert "make bench-quick" in DOC and "make bench" in DOC


def test_the_model_path_benchmark_needs_no_training_checkpoint(tmp_path: Path) -> None:
    """Without build/classifier/checkpoint, benchmark 1's reference is a twin of the shipped graph's shape
    that a Hugging Face pipeline runs with the shipped tokenizer."""
    from transformers import pipeline

    from bench.model_path import shape_twin
    from moderator.runtime.metadata import read_metadata
    from moderator.settings import DEFAULT_CLASSIFIER
    from topics import LABEL_KEYS

    twin = shape_twin(DEFAULT_CLASSIFIER, tmp_path / "twin")
    pipe = pipeline("text-classification", model=str(twin), tokenizer=str(twin), device=-1)
    config = pipe.model.config
    import onnx

    graph = onnx.load(str(DEFAULT_CLASSIFIER / "model.onnx"), load_external_data=False).graph
    dims = {i.name: list(i.dims) for i in graph.initializer}
    assert [config.vocab_size, config.hidden_size] == dims["bert.embeddings.word_embeddings.weight"]
    assert f"bert.encoder.layer.{config.num_hidden_layers - 1}.output.dense.bias" in dims
    assert f"bert.encoder.layer.{config.num_hidden_layers}.output.dense.bias" not in dims
    out = pipe(
        ["안녕하세요", "이 댓글은 조금 더 길어서 패딩이 필요합니다"],
        batch_size=2,
        top_k=None,
        function_to_apply="sigmoid",
    )
    # every output of the shipped model (the multitask model: LABEL_KEYS, the safety keys, unsafe)
    keys = read_metadata(DEFAULT_CLASSIFIER).label_keys
    assert set(LABEL_KEYS) <= set(keys)
    assert [sorted(r["label"] for r in row) for row in out] == [sorted(keys)] * 2


def test_writing_a_section_keeps_every_other_section_listed_or_not(tmp_path: Path) -> None:
    """A benchmark outside ``SECTIONS`` (bench.api) keeps its section when another one is rewritten."""
    doc = tmp_path / "benchmarks.md"
    write_section(Section("api", "HTTP API", "api figures", "python -m bench.api", []), doc)
    write_section(Section("overhead", "Overhead", "old figures", "python -m bench.overhead", []), doc)
    write_section(Section("overhead", "Overhead", "new figures", "python -m bench.overhead", []), doc)
    text = doc.read_text(encoding="utf-8")
    assert "api figures" in text and "new figures" in text and "old figures" not in text
    assert text.count("<!-- bench:api:begin -->") == 1 and text.count("<!-- bench:overhead:begin -->") == 1


def test_writing_a_section_keeps_notes_written_between_sections(tmp_path: Path) -> None:
    """Text added by hand after a section inside the generated block stays after that section."""
    doc = tmp_path / "benchmarks.md"
    write_section(Section("api", "HTTP API", "api figures", "python -m bench.api", []), doc)
    write_section(Section("overhead", "Overhead", "old figures", "python -m bench.overhead", []), doc)
    text = doc.read_text(encoding="utf-8")
    note = "*A note on the overhead run,*\nwritten by hand."
    doc.write_text(text.replace("<!-- bench:overhead:end -->\n", f"<!-- bench:overhead:end -->\n\n{note}\n"))
    write_section(Section("api", "HTTP API", "new api figures", "python -m bench.api", []), doc)
    write_section(Section("overhead", "Overhead", "new figures", "python -m bench.overhead", []), doc)
    text = doc.read_text(encoding="utf-8")
    assert text.count(note) == 1
    assert text.index("new figures") < text.index(note) < text.index("<!-- bench-suite:end -->")
    assert "new api figures" in text and "old figures" not in text


def test_the_summary_keeps_rows_it_has_no_raw_result_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh clone has no build/bench/*.json: rewriting the summary keeps the rows already in it."""
    from bench import run_all

    doc = tmp_path / "benchmarks.md"
    rows = "| benchmark | goal | result (median) |\n| --- | --- | --- |\n| overhead | g | 30,693 msg/s: 0.51× batched loop |\n"
    write_section(Section("summary", "Summary", rows, "python -m bench"), doc)
    monkeypatch.setattr(run_all, "RESULTS_DIR", tmp_path / "no-results")
    assert run_all.main(["--only", "--doc", str(doc)]) == 0
    text = doc.read_text(encoding="utf-8")
    assert (
        "| overhead | ≥0.5× the raw aiokafka loop | 30,693 msg/s: 0.51× batched loop (earlier run; see its section) |"
        in text
    )
