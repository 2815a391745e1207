"""A tiny classifier and judge training run on a synthetic backbone: the CLI's outputs and that it learns."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from onnx_export.backbone import build_backbone  # noqa: E402
from onnx_export.train import TrainConfig, bucketed_batches, main, train_judge  # noqa: E402
from tests.onnx_export.test_backbone import write_image, write_tokenizer  # noqa: E402
from topics.labels import LABEL_KEYS, UNSMILE_COLUMNS  # noqa: E402


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bb")
    write_image(d / "m.bin", np.random.default_rng(5))
    write_tokenizer(d / "tokenizer.json")
    return build_backbone(d / "m.bin", d / "tokenizer.json", ["안녕하세요 욕설 hello"], d / "backbone")


def test_bucketed_batches_cover_every_row_once() -> None:
    lengths = [random.Random(1).randint(3, 60) for _ in range(103)]
    batches = bucketed_batches(lengths, 8, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert all(len(b) <= 8 for b in batches)


def test_classifier_cli_learns_and_writes_outputs(backbone: Path, tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        hateful = i % 2 == 0
        text = "욕설 안녕" if hateful else "안녕하세요"
        labels = {"profanity": 1} if hateful else {"clean": 1}
        rows.append(text + "\t" + "\t".join(str(labels.get(k, 0)) for k in LABEL_KEYS) + "\t0")
    tsv = tmp_path / "own.tsv"
    tsv.write_text("문장\t" + "\t".join(UNSMILE_COLUMNS) + "\t개인지칭\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    main(
        ["classifier", "--train-file", str(tsv), "--backbone", str(backbone), "--out", str(out)]
        + ["--epochs", "4", "--batch-size", "8", "--frozen-layers", "0", "--encoder-lr", "1e-3", "--head-lr", "1e-2"]
    )
    summary = json.loads((out / "train_summary.json").read_text())
    hist = summary["history"]
    assert len(hist) == 4
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(10)] == list(LABEL_KEYS)
    assert config["problem_type"] == "multi_label_classification"
    th = json.loads((out / "thresholds.json").read_text())
    assert list(th["labels"]) == list(LABEL_KEYS)
    assert summary["dev_rows"] == 4 and summary["train_rows"] == 36


def test_judge_training_run(backbone: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for i in range(40):
            unsafe = i % 2 == 0
            fh.write(
                json.dumps({"prompt": "안녕", "reply": "욕설 욕설" if unsafe else "안녕하세요", "unsafe": unsafe}) + "\n"
            )
    cfg = TrainConfig(epochs=3, batch_size=8, frozen_layers=0, encoder_lr=1e-3, head_lr=1e-2)
    summary = train_judge(data, backbone, tmp_path / "judge", cfg)
    config = json.loads((tmp_path / "judge" / "checkpoint" / "config.json").read_text())
    assert config["id2label"] == {"0": "safe", "1": "unsafe"}
    assert summary["history"][-1]["train_loss"] < summary["history"][0]["train_loss"]
    assert 0.0 <= json.loads((tmp_path / "judge" / "thresholds.json").read_text())["judge"] <= 1.0
