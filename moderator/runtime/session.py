"""ONNX Runtime session factory: the provider is checked after creation, not trusted.

onnxruntime-gpu lists ``CUDAExecutionProvider`` as available and then quietly builds a CPU-only
session when the CUDA/cuDNN libraries cannot be loaded. So the factory asks the session what it got:
``cuda`` raises ``ProviderError``, ``auto`` logs the fallback, and the provider actually in use is
what the model reports in metrics and ``/health``. On CUDA, runs go through IO binding so outputs that
are fed back in (a cached prefix) can stay on the device.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from moderator.runtime.errors import ModelLoadError, ProviderError
from moderator.runtime.options import RuntimeOptions

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

Feed: TypeAlias = "npt.NDArray[Any] | ort.OrtValue"


class Session:
    """A created ``InferenceSession`` plus the provider it really runs on (``"cuda"`` or ``"cpu"``)."""

    def __init__(self, session: ort.InferenceSession, provider: str) -> None:
        self.session = session
        self.provider = provider
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.input_types = {i.name: i.type for i in session.get_inputs()}

    def _bind_inputs(self, feeds: Mapping[str, Feed]) -> ort.IOBinding:
        """An IO binding with every feed bound: OrtValues where they live, arrays copied from host."""
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        return binding

    def run(self, feeds: Mapping[str, Feed], outputs: Sequence[str] | None = None) -> list[npt.NDArray[Any]]:
        """Run and return numpy outputs (in ``outputs`` order, default all)."""
        names = list(outputs) if outputs is not None else self.output_names
        if self.provider == "cuda":
            binding = self._bind_inputs(feeds)
            for name in names:
                binding.bind_output(name, "cpu")
            self.session.run_with_iobinding(binding)
            return [v.numpy() for v in binding.get_outputs()]
        arrays = {k: (v.numpy() if isinstance(v, ort.OrtValue) else v) for k, v in feeds.items()}
        return list(self.session.run(names, arrays))

    def to_device(self, array: npt.NDArray[Any]) -> Feed:
        """Place an input where the session runs, so repeated feeds are not copied every call."""
        if self.provider == "cuda":
            return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0)
        return np.ascontiguousarray(array)


def _session_options(options: RuntimeOptions, intra_threads: int) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_threads:
        so.intra_op_num_threads = intra_threads
    if options.inter_op_threads:
        so.inter_op_num_threads = options.inter_op_threads
    so.log_severity_level = 3
    return so


def runs_on_cpu(options: RuntimeOptions) -> bool:
    """Whether a session created with ``options`` is put on CPU (no CUDA asked for, or none installed);
    ``create_session`` decides by this, and a CUDA session that quietly falls back is caught after."""
    return options.device == "cpu" or CUDA not in ort.get_available_providers()


#: Initializers smaller than this stay in each session (shapes and scalars that constant folding uses).
SHARED_INITIALIZER_BYTES = 4096


def shared_initializers(model_path: Path) -> dict[str, ort.OrtValue] | None:
    """The model's weights as OrtValues that several sessions of it can use without a copy each
    (``SessionOptions.add_initializer``); ``None`` when the ``onnx`` package is missing or cannot read
    the file (the sessions then load their own copies, or ONNX Runtime names the problem).

    A second session of the shipped model cost 133 MiB with its own weights and 36 MiB with shared
    ones, at the same speed and bit-identical scores (docs/benchmarks.md, model lanes).
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return None
    try:
        graph = onnx.load(str(model_path)).graph
        out: dict[str, ort.OrtValue] = {}
        for tensor in graph.initializer:
            array = numpy_helper.to_array(tensor)
            if array.nbytes > SHARED_INITIALIZER_BYTES:
                out[tensor.name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array))
        return out
    except Exception as exc:  # a broken file: the session's own load reports it with the file named
        log.info("%s: weights not shared between sessions (%s)", model_path, exc)
        return None


def create_session(
    model_path: Path,
    options: RuntimeOptions,
    *,
    cpu_lanes: int = 1,
    intra_threads: int | None = None,
    initializers: dict[str, ort.OrtValue] | None = None,
) -> Session:
    """Create a session on ``options.device`` and verify the provider it actually uses.

    ``cpu_lanes``: how many runs at once the caller will make if the session lands on CPU; each then
    gets one intra-op thread unless ``options.intra_op_threads`` (or ``intra_threads``, for this
    session alone) says otherwise. ``initializers``: weights shared with other sessions of the model.
    """
    if not model_path.is_file():
        raise ModelLoadError(model_path, "ONNX model file is missing", "copy the whole exported directory")
    available = ort.get_available_providers()
    want_cuda = not runs_on_cpu(options)
    if options.device == "cuda" and CUDA not in available:
        raise ProviderError(
            f"MODERATOR_DEVICE=cuda but this onnxruntime ({ort.__version__}) has no CUDA provider "
            f"(available: {available}); install moderator[gpu] (onnxruntime-gpu) instead of moderator[cpu]"
        )
    providers: list[Any] = [CUDA, CPU] if want_cuda else [CPU]
    try:
        threads = options.session_intra_threads(1 if want_cuda else cpu_lanes)
        so = _session_options(options, threads if intra_threads is None else intra_threads)
        for name, value in (initializers or {}).items():
            so.add_initializer(name, value)
        session = ort.InferenceSession(str(model_path), so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeException types
        raise ModelLoadError(
            model_path,
            f"ONNX Runtime cannot load the model ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})",
            "the file is corrupt or from an incompatible exporter: re-export it with `python -m onnx_export`",
        ) from exc
    got = session.get_providers()
    provider = "cuda" if got and got[0] == CUDA else "cpu"
    if want_cuda and provider != "cuda":
        message = (
            f"{model_path}: asked for CUDA but the session runs on {got}: the CUDA/cuDNN libraries "
            "onnxruntime-gpu needs are not loadable (check LD_LIBRARY_PATH, CUDA 13 and cuDNN 9 for onnxruntime-gpu 1.31)"
        )
        if options.device == "cuda":
            raise ProviderError(message)
        log.warning("%s; MODERATOR_DEVICE=auto falls back to CPU", message)
    log.info("loaded %s on %s (providers %s)", model_path, provider, got)
    return Session(session, provider)
