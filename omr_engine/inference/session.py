"""Run an exported model directory with onnxruntime (no torch).

    recognizer = Recognizer("resources/models/small")          # device="auto"|"cpu"|"cuda"
    results = recognizer.recognize(crops, grammar_factory=grammar.start, beam=1)
    results[0].ids, results[0].token_confidences

The directory is what ``omr_engine.model.export.export_model`` writes: ``encoder.onnx``,
``decoder.onnx``, ``config.json`` (model + preprocessing + runtime) and ``vocab.json``.
Crops are preprocessed with ``omr_engine.inference.preprocess`` from the saved settings,
sorted by width and batched (less padding), and decoded greedily or with beam search.
Cross-attention keys/values and the KV cache stay on the execution device between steps
(IO binding); only token ids and logits cross to the host.
"""

from __future__ import annotations

import ctypes
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from omr_engine.inference.contract import (
    CONFIG_FILE,
    FORMAT_VERSION,
    HYBRID_CTC_WEIGHT,
    VOCAB_FILE,
    io_names,
)
from omr_engine.inference.decoding import (
    GrammarState,
    Result,
    aligned_result,
    beam_decode,
    column_logp,
    ctc_beam_decode,
    ctc_decode,
    greedy_decode,
)
from omr_engine.inference.joint import joint_decode
from omr_engine.inference.preprocess import PreprocessConfig, preprocess_batch
from omr_engine.inference.structure import follow_grammar
from omr_engine.inference.voices import canonical_reading
from omr_engine.notation.vocabulary import Vocabulary

__all__ = ["Recognizer", "Result", "ModelLoadError", "ProviderError", "select_providers"]


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or of an unknown format."""


class ProviderError(RuntimeError):
    """The requested execution device is not usable."""


def _cuda_device_count() -> int:
    """GPUs the CUDA driver sees (0 without a driver), asked without torch."""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def select_providers(device: str = "auto") -> list[str]:
    """Providers to ask onnxruntime for: CUDA first when requested or when a GPU is present
    (``auto``), CPU last. ``auto`` does not try CUDA on a machine without a GPU, which
    onnxruntime-gpu would otherwise report as an error before falling back."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    has_cuda_ep = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda":
        if not has_cuda_ep:
            raise ProviderError(
                "this onnxruntime build has no CUDA support (install onnxruntime-gpu)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if has_cuda_ep and _cuda_device_count() > 0:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class _Runtime:
    """The ``runtime`` section of config.json."""

    encoder: str
    decoder: str
    precision: str
    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    max_len: int
    dec_layers: int
    dec_heads: int
    dec_head_dim: int
    ctc: bool = False  # the encoder also gives CTC logits
    decoder_kind: str = "attention"  # what recognize() uses by default: attention, ctc, hybrid
    ctc_weight: float = HYBRID_CTC_WEIGHT  # the CTC head's share of a hybrid reading's score
    beam: int | None = None  # the beam the page pipeline reads with (None: its own default)
    stretch: float = 1.0  # crops are read this many times wider than their aspect ratio says
    second_stretch: float | list[float] | None = None  # a staff left in doubt: read wider
    second_below: float | None = None  # ... also when its score is below this (second_look.py)
    second_vote: bool = False  # ... at every width, its readings voted measure by measure


@dataclass
class _State:
    """Per-row decoding state; every tensor has the batch as its first axis."""

    cross: list[ort.OrtValue]  # per layer k, v: (N, h, S, hd)
    memory_valid: ort.OrtValue  # (N, S)
    past: list[ort.OrtValue]  # per layer k, v: (N, h, P, hd)
    extra: dict[str, ort.OrtValue] = field(default_factory=dict)  # CTC logits, on the host


class _OrtStepDecoder:
    """``StepDecoder`` over the decoder session; tensors stay on ``device_type``."""

    def __init__(self, session: ort.InferenceSession, device_type: str, layers: int) -> None:
        self.session = session
        self.device = device_type
        self.names = io_names(layers)

    def put(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)

    def step(self, tokens: np.ndarray, state: _State) -> tuple[np.ndarray, _State]:
        io = self.session.io_binding()
        io.bind_cpu_input("tokens", np.ascontiguousarray(tokens.reshape(-1, 1), dtype=np.int64))
        io.bind_ortvalue_input("memory_valid", state.memory_valid)
        for name, value in zip(self.names["cross"], state.cross, strict=True):
            io.bind_ortvalue_input(name, value)
        for name, value in zip(self.names["past"], state.past, strict=True):
            io.bind_ortvalue_input(name, value)
        io.bind_output("logits", "cpu")
        for name in self.names["present"]:
            io.bind_output(name, self.device, 0)
        self.session.run_with_iobinding(io)
        logits, *present = io.get_outputs()
        return logits.numpy()[:, -1], _State(state.cross, state.memory_valid, present)

    def select(self, state: _State, rows: np.ndarray) -> _State:
        # A gather on the host: on CUDA this copies the caches once per reorder (beam search,
        # or when rows finish), not once per step.
        def take(v: ort.OrtValue) -> ort.OrtValue:
            return self.put(v.numpy()[rows])

        return _State(
            [take(v) for v in state.cross], take(state.memory_valid), [take(v) for v in state.past]
        )


class Recognizer:
    """Loads a model directory once; ``recognize`` turns crops into token ids."""

    def __init__(
        self, model_dir: str | Path, device: str = "auto", num_threads: int | None = None
    ) -> None:
        self.model_dir = Path(model_dir)
        config_path = self.model_dir / CONFIG_FILE
        if not config_path.is_file():
            raise ModelLoadError(f"{self.model_dir} is not a model directory (no config.json)")
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            if config.get("format_version") != FORMAT_VERSION:
                raise ModelLoadError(
                    f"model format {config.get('format_version')} is not the one this program "
                    f"reads ({FORMAT_VERSION}); use a model exported for this version"
                )
            self.config: dict[str, Any] = config
            self.preprocess = PreprocessConfig.from_dict(config["model"]["preprocess"])
            known = _Runtime.__dataclass_fields__
            self.runtime = _Runtime(**{k: v for k, v in config["runtime"].items() if k in known})
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            if isinstance(exc, ModelLoadError):
                raise
            raise ModelLoadError(f"{config_path} is not a valid model config: {exc}") from exc
        for name in (self.runtime.encoder, self.runtime.decoder):
            if not (self.model_dir / name).is_file():
                raise ModelLoadError(f"{self.model_dir} lacks {name}")

        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # a missing CUDA library is reported by us, not ORT's log
        if num_threads:
            opts.intra_op_num_threads = num_threads
            opts.inter_op_num_threads = 1
        providers = select_providers(device)
        self.encoder = ort.InferenceSession(
            str(self.model_dir / self.runtime.encoder), opts, providers=providers
        )
        using_cuda = self.encoder.get_providers()[0] == "CUDAExecutionProvider"
        if device == "cuda" and not using_cuda:
            raise ProviderError("CUDA was requested but onnxruntime could not use the GPU")
        if not using_cuda:
            providers = ["CPUExecutionProvider"]
        self.decoder = ort.InferenceSession(
            str(self.model_dir / self.runtime.decoder), opts, providers=providers
        )
        self.device = "cuda" if using_cuda else "cpu"
        self._step = _OrtStepDecoder(self.decoder, self.device, self.runtime.dec_layers)
        self._vocab: Vocabulary | None | bool = False  # False: not looked at yet

    @property
    def vocab(self) -> Vocabulary | None:
        """The vocabulary the model was trained with, or None when its file is not one
        (test models with a toy vocabulary); loaded on first use."""
        if self._vocab is False:
            try:
                self._vocab = Vocabulary.load(self.vocab_path())
            except (OSError, ValueError, KeyError):
                self._vocab = None
        return self._vocab  # type: ignore[return-value]

    def _canonical(self, results: list[Result]) -> list[Result]:
        """Readings in onset order (``<voice:N>``) back in canonical order."""
        vocab = self.vocab
        return results if vocab is None else [canonical_reading(r, vocab) for r in results]

    @property
    def providers(self) -> list[str]:
        return self.encoder.get_providers()

    def vocab_path(self) -> Path:
        return self.model_dir / VOCAB_FILE

    def _encode(self, images: Sequence[np.ndarray], stretch: float = 1.0) -> _State:
        pixels, widths = preprocess_batch(images, self.preprocess, stretch)
        io = self.encoder.io_binding()
        io.bind_cpu_input("pixels", pixels)
        io.bind_cpu_input("widths", widths)
        names = self._step.names
        wanted = [*names["cross"], "memory_valid"]
        for name in wanted:
            io.bind_output(name, self.device, 0)
        extra = [o.name for o in self.encoder.get_outputs() if o.name not in wanted]
        for name in extra:  # CTC logits: read on the host
            io.bind_output(name, "cpu")
        self.encoder.run_with_iobinding(io)
        outputs = io.get_outputs()
        *cross, memory_valid = outputs[: len(wanted)]
        rt = self.runtime
        empty = np.zeros((len(images), rt.dec_heads, 0, rt.dec_head_dim), np.float32)
        past = [self._step.put(empty) for _ in names["past"]]
        return _State(
            cross, memory_valid, past, dict(zip(extra, outputs[len(wanted) :], strict=True))
        )

    @staticmethod
    def _read_ctc(
        logits: np.ndarray,
        length: int,
        beam: int,
        grammar_factory: Callable[[], GrammarState] | None,
        keep: bool,
    ) -> Result:
        """One crop read by the CTC head: best path or prefix beam search, read freely and
        then edited to the grammar in the order the model reads, whose columns the edit
        weighs tokens by (:mod:`.structure`)."""
        if beam > 1:
            r = ctc_beam_decode(logits, length, beam=beam, token_logp=keep)
        else:
            r = ctc_decode(logits, length, token_logp=keep)
        return r if grammar_factory is None else follow_grammar(r, grammar_factory)

    def recognize(
        self,
        images: Sequence[np.ndarray],
        grammar_factory: Callable[[], GrammarState] | None = None,
        beam: int = 1,
        max_len: int | None = None,
        batch_size: int = 8,
        decoder: str | None = None,
        token_logp: bool = False,
        ctc_weight: float | None = None,
        stretch: float | None = None,
    ) -> list[Result]:
        """Recognise crops (uint8 grayscale, dark ink on white), one ``Result`` per crop.

        ``grammar_factory`` (e.g. ``grammar.start``) constrains decoding (with the CTC
        decoder, the free reading is edited to follow the grammar: :mod:`.structure`);
        ``decoder`` is ``attention`` (autoregressive, the default unless the model says
        otherwise), ``ctc`` (the encoder's CTC head: one pass) or ``hybrid`` (both, each
        hypothesis scored by the CTC head with ``ctc_weight``, default the model's:
        :mod:`.joint`); ``beam`` > 1 uses beam search (prefix beam search for CTC);
        ``max_len`` caps the tokens per crop, BOS included (at most the model's
        ``max_len``); ``token_logp`` keeps, with the CTC and hybrid decoders, each token's
        column of log-probabilities in ``meta["token_logp"]`` and the crop's columns in
        ``meta["columns"]``; ``stretch`` reads every crop that many times wider than its
        aspect ratio says (default: the model's ``runtime.stretch``). Positions stay
        fractions of the crop's width.
        """
        if beam < 1:
            raise ValueError("beam must be >= 1")
        decoder = decoder or self.runtime.decoder_kind
        if decoder not in ("attention", "ctc", "hybrid"):
            raise ValueError(f"decoder is 'attention', 'ctc' or 'hybrid', not {decoder!r}")
        if decoder in ("ctc", "hybrid") and not self.runtime.ctc:
            raise ValueError(f"{self.model_dir} has no CTC head; use the attention decoder")
        limit = min(max_len or self.runtime.max_len, self.runtime.max_len)
        order = sorted(range(len(images)), key=lambda i: images[i].shape[1] / images[i].shape[0])
        results: list[Result | None] = [None] * len(images)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            state = self._encode(
                [images[i] for i in chunk], self.runtime.stretch if stretch is None else stretch
            )
            common = dict(
                bos_id=self.runtime.bos_id,
                eos_id=self.runtime.eos_id,
                max_len=limit,
                grammar_factory=grammar_factory,
            )
            if decoder in ("ctc", "hybrid"):
                logits = state.extra["ctc_logits"].numpy()
                lengths = state.extra["ctc_lengths"].numpy()
                keep = token_logp or grammar_factory is not None
                if decoder == "ctc":
                    out = [
                        self._read_ctc(logits[row], int(lengths[row]), beam, grammar_factory, keep)
                        for row in range(len(chunk))
                    ]
                else:
                    weight = self.runtime.ctc_weight if ctc_weight is None else ctc_weight
                    logps = [column_logp(logits[row], lengths[row]) for row in range(len(chunk))]
                    joint = joint_decode(
                        self._step, state, logps, beam=beam, ctc_weight=weight, **common
                    )
                    # a line longer than the decoder may read (max_len), or one the columns
                    # cannot spell (only when the search found no other), is read by the
                    # CTC head alone
                    out = [
                        (aligned_result(a, logps[row], keep) if a.finished else None)
                        or self._read_ctc(logits[row], int(lengths[row]), 1, grammar_factory, keep)
                        for row, a in enumerate(joint)
                    ]
                if not token_logp:
                    for r in out:
                        r.meta.pop("token_logp", None)
                        r.meta.pop("columns", None)
                out = self._canonical(out)
            elif beam == 1:
                out = self._canonical(greedy_decode(self._step, state, len(chunk), **common))
            else:
                out = self._canonical(
                    beam_decode(self._step, state, len(chunk), beam=beam, **common)
                )
            for i, r in zip(chunk, out, strict=True):
                results[i] = r
        return results  # type: ignore[return-value]
