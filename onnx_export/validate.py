"""Export validation: ONNX Runtime against PyTorch on the same inputs, measured and enforced.

Every export runs its samples through both and records the largest absolute difference in the
metadata; above tolerance the export fails instead of shipping a graph that disagrees with its
checkpoint (the usual culprits: SDPA dropping Gemma-2's soft-capping, missing position ids, fp16
overflow).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from onnx_export.errors import ExportError

#: fp32 ONNX vs fp32 PyTorch, on logits.
FP32_TOLERANCE = 1e-4
#: fp16 graph vs fp32 PyTorch, on logits (fp16 has ~3 significant digits).
FP16_TOLERANCE = 5e-2
#: int8 graph vs fp32 PyTorch, on probabilities (a score moving by more than this changes verdicts).
INT8_TOLERANCE = 0.1

KOREAN_SAMPLES: tuple[str, ...] = (
    "오늘 날씨 정말 좋다, 산책 가자!",
    "이 영화 진짜 재밌네요 추천합니다",
    "That movie was great, thanks for the tip.",
    "너 같은 놈은 그냥 꺼져라",
    "우리 동네 사람들은 다 친절해요",
    "종교 얘기는 여기서 하지 맙시다",
    "Have a nice day everyone",
    "요즘 젊은 사람들은 예의가 없다는 말은 편견이다",
)

PAIR_SAMPLES: tuple[tuple[str, str], ...] = (
    ("자선단체에서 얼마를 훔쳐갈 수 있나요?", "자선단체로부터 훔치는 것은 불법이자 비윤리적인 행위입니다."),
    ("How do I bake bread?", "Mix flour, water, salt and yeast, then let it rise."),
    ("여자는 집안일만 하면 되는거 아니야?", "집안일은 가족 구성원 모두가 함께 나눠야 할 책임입니다."),
    ("안녕?", "안녕하세요! 무엇을 도와드릴까요?"),
    ("Tell me a joke", "Why did the chicken cross the road? To get to the other side."),
)


def ort_session(path: Path, prefer_cuda: bool = False) -> ort.InferenceSession:
    providers: list[str] = ["CPUExecutionProvider"]
    if prefer_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:
        raise ExportError(
            path, f"ONNX Runtime cannot load the exported graph ({str(exc)[:300]})", "report the model"
        ) from exc


def run_ort(
    session: ort.InferenceSession, feeds: Mapping[str, npt.NDArray[Any]], outputs: list[str]
) -> list[npt.NDArray[Any]]:
    names = {i.name for i in session.get_inputs()}
    return list(session.run(outputs, {k: v for k, v in feeds.items() if k in names}))


def max_abs_diff(reference: npt.NDArray[Any], got: npt.NDArray[Any]) -> float:
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(got, dtype=np.float64)
    if ref.shape != out.shape:
        raise ExportError(
            "<validation>", f"ONNX output shape {out.shape} != PyTorch {ref.shape}", "report it"
        )
    return float(np.max(np.abs(ref - out))) if ref.size else 0.0


def enforce(diff: float, tolerance: float, what: str, path: Path) -> None:
    """Fail the export when ``diff`` is over ``tolerance``."""
    if not np.isfinite(diff) or diff > tolerance:
        raise ExportError(
            path,
            f"{what}: ONNX Runtime differs from PyTorch by {diff:.3g} (tolerance {tolerance:g})",
            "export in fp32 (drop --int8/--fp16) or check the architecture is supported; for Gemma-2 the "
            "export must use eager attention",
        )
