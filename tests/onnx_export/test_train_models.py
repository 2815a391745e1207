"""A tiny classifier and judge training run on a synthetic backbone: the CLI's outputs and that it learns."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from onnx_export.backbone import build_backbone  # noqa: E402
from onnx_export.train.cards import _train_flags  # noqa: E402
from onnx_export.train.cli import main  # noqa: E402
from onnx_export.train.single_task import (  # noqa: E402
    TrainConfig,
    bucketed_batches,
    train_judge,
    unsmile_reply_pairs,
)
from tests.onnx_export.test_backbone import write_image, write_tokenizer  # noqa: E402
from topics.labels import LABEL_KEYS, UNSMILE_COLUMNS  # noqa: E402


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bb")
    write_image(d / "m.bin", np.random.default_rng(5))
    write_tokenizer(d / "tokenizer.json")
    return build_backbone(d / "m.bin", d / "tokenizer.json", ["안녕하세요 욕설 hello"], d / "backbone")


def test_padded_batch_right_pads_to_the_longest_row() -> None:
    """One padding routine serves the single-task trainer (token types) and the multitask one (XLM-R:
    one token type)."""
    from onnx_export.train.multitask import Tokenised
    from onnx_export.train.single_task import padded_batch

    ids = [[0, 5, 6, 2], [0, 7, 2]]
    tok = Tokenised.__new__(Tokenised)
    tok.ids, tok.pad_id = ids, 1
    b = tok.batch([1, 0])
    assert b["input_ids"].tolist() == [[0, 7, 2, 1], [0, 5, 6, 2]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert b["token_type_ids"].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]
    typed = padded_batch(ids, [0, 1], 1, [[0, 0, 1, 1], [0, 1, 1]])
    assert typed["token_type_ids"].tolist() == [[0, 0, 1, 1], [0, 1, 1, 0]]


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
    tsv.write_text(
        "문장\t" + "\t".join(UNSMILE_COLUMNS) + "\t개인지칭\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    out = tmp_path / "run"
    main(
        ["classifier", "--train-file", str(tsv), "--backbone", str(backbone), "--out", str(out)]
        + [
            "--epochs",
            "4",
            "--batch-size",
            "8",
            "--frozen-layers",
            "0",
            "--encoder-lr",
            "1e-3",
            "--head-lr",
            "1e-2",
        ]
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
                json.dumps(
                    {"prompt": "안녕", "reply": "욕설 욕설" if unsafe else "안녕하세요", "unsafe": unsafe}
                )
                + "\n"
            )
    cfg = TrainConfig(epochs=3, batch_size=8, frozen_layers=0, encoder_lr=1e-3, head_lr=1e-2)
    summary = train_judge(data, backbone, tmp_path / "judge", cfg)
    config = json.loads((tmp_path / "judge" / "checkpoint" / "config.json").read_text())
    assert config["id2label"] == {"0": "safe", "1": "unsafe"}
    assert summary["history"][-1]["train_loss"] < summary["history"][0]["train_loss"]
    assert 0.0 <= json.loads((tmp_path / "judge" / "thresholds.json").read_text())["judge"] <= 1.0


def write_corpora(root: Path) -> None:
    """A data directory in ../shared/data's shape: 12 UnSmile rows (8 train), 3 SQuARe questions."""
    (root / "unsmile").mkdir(parents=True)
    (root / "square").mkdir()
    rows = []
    for i in range(12):
        labels = (
            {"clean": 1} if i % 3 == 0 else ({"profanity": 1} if i % 3 == 1 else {"age": 1, "profanity": 1})
        )
        rows.append(f"댓글 {i}\t" + "\t".join(str(labels.get(k, 0)) for k in LABEL_KEYS) + "\t0")
    (root / "unsmile" / "unsmile_train_v1.0.tsv").write_text(
        "문장\t" + "\t".join(UNSMILE_COLUMNS) + "\t개인지칭\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    split = {"train": [0, 1, 2, 3, 4, 5, 6, 7], "dev": [8, 9, 10, 11]}
    (root / "unsmile" / "train_dev_split.json").write_text(json.dumps(split))
    questions = [{"question": f"질문 {i}?", "sensitive?": i % 2, "category": "ethical"} for i in range(3)]
    (root / "square" / "question_valid.json").write_text(json.dumps(questions, ensure_ascii=False))


def test_unsmile_reply_pairs_balanced_train_split_only(tmp_path: Path) -> None:
    write_corpora(tmp_path)
    pairs = unsmile_reply_pairs(tmp_path, 4, seed=1)
    # train rows 0..7: clean = 0, 3, 6; not clean = the other five. Half of 4 from each side.
    assert len(pairs.replies) == 4 and pairs.unsafe.tolist() == [1.0, 1.0, 0.0, 0.0]
    texts = {f"댓글 {i}" for i in range(8)}
    assert set(pairs.replies) <= texts  # never a dev row
    assert all(
        r in {"댓글 0", "댓글 3", "댓글 6"}
        for r, y in zip(pairs.replies, pairs.unsafe, strict=True)
        if y == 0
    )
    assert all(
        r not in {"댓글 0", "댓글 3", "댓글 6"}
        for r, y in zip(pairs.replies, pairs.unsafe, strict=True)
        if y == 1
    )
    assert set(pairs.prompts) <= {"질문 0?", "질문 1?", "질문 2?"}
    # more asked for than one side has: both halves shrink to the smaller side, still balanced
    big = unsmile_reply_pairs(tmp_path, 100, seed=1)
    assert big.unsafe.tolist() == [1.0] * 3 + [0.0] * 3
    assert unsmile_reply_pairs(tmp_path, 4, seed=1).replies == pairs.replies  # seeded


def test_judge_with_unsmile_replies_needs_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data directory"):
        train_judge(tmp_path / "none.jsonl", tmp_path, tmp_path / "j", TrainConfig(unsmile_replies=4))


def test_train_flags_show_only_changed_settings() -> None:
    cfg = {**TrainConfig().__dict__, "frozen_layers": 0, "epochs": 4}
    assert _train_flags(cfg) == "--epochs 4 --frozen-layers 0"
    assert _train_flags(TrainConfig().__dict__) == ""


def test_lexical_branch_in_onnx_matches_numpy(tmp_path: Path) -> None:
    """The Gather/hash graph must compute exactly LexicalModel.logits, padding and short rows included."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from onnx_export.train.lexical import LexicalModel, add_lexical_branch, set_lexical_weights

    k, vocab, buckets = 3, 50, 64
    g = helper.make_graph(
        [
            helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["f", "ax"], ["s"], keepdims=1),
            helper.make_node("Mul", ["s", "w"], ["logits"]),
        ],
        "nn",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "t"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "t"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", k])],
        [
            numpy_helper.from_array(np.array([1], np.int64), "ax"),
            numpy_helper.from_array(np.array([[0.01, -0.02, 0.03]], np.float32), "w"),
        ],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(path))
    rng = np.random.default_rng(0)
    lex = LexicalModel(
        rng.normal(size=(vocab + buckets, k)).astype(np.float32),
        rng.normal(size=k).astype(np.float32),
        vocab,
        buckets,
    )
    scale, shift, lscale = (np.array(v, np.float32) for v in ([0.6] * k, [0.1, -0.2, 0.3], [0.4] * k))
    add_lexical_branch(path, lex, scale, shift, lscale)
    rows = [[0, 5, 7, 7, 2], [0, 9, 2], [0]]
    ids = np.ones((3, 5), np.int64)
    mask = np.zeros((3, 5), np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    got = ort.InferenceSession(str(path)).run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    nn = ids.sum(axis=1, keepdims=True).astype(np.float32) * np.array([[0.01, -0.02, 0.03]], np.float32)
    want = scale * (nn + shift) + lscale * lex.logits(rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # re-weighed in place: the same branch, the new mix (and the old weights handed back)
    new = np.array([0.0, 0.2, 0.9], np.float32)
    np.testing.assert_allclose(set_lexical_weights(path, new), lscale)
    got = ort.InferenceSession(str(path)).run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
    np.testing.assert_allclose(got, (1 - new) * (nn + shift) + new * lex.logits(rows), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="columns"):
        set_lexical_weights(path, np.zeros(k + 1, np.float32))
    plain = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(plain))
    with pytest.raises(ValueError, match="no lexical branch"):
        set_lexical_weights(plain, new)
