"""Export a trained model to an ONNX model directory for the torch-free runtime.

The directory holds:

- ``encoder.onnx``: ``pixels`` (B, 1, H, W) float32, ``widths`` (B,) int64 ->
  ``cross_k.{i}`` (B, h, hd, S) and ``cross_v.{i}`` (B, h, S, hd) for each decoder layer i
  (the decoder's cross-attention keys, transposed and pre-scaled, and values, computed once
  per crop instead of at every step) and
  ``memory_valid`` (B, S) float32; for a model with a CTC head also ``ctc_logits``
  (B, C, V+1, blank last) over the patch columns and ``ctc_lengths`` (B,) int64, which the
  runtime's CTC decoder reads (one encoder pass, no autoregressive steps);
- ``decoder.onnx``: one decoding step with a KV cache: ``tokens`` (B, T) int64,
  ``memory_valid``, the ``cross_*`` tensors and ``past_k.{i}``/``past_v.{i}`` (B, h, P, hd)
  -> ``logits`` (B, T, V) and ``present_k.{i}``/``present_v.{i}`` (B, h, P+T, hd).
  Positions continue from P (the past length); the first step has P = 0. One tensor per
  layer, not a stacked cache, so a step never copies every layer's cache;
- ``config.json``: the model config (preprocessing included), the runtime section the
  session reads, and provenance;
- ``vocab.json``: a copy of the vocabulary file.

Dynamic axes: batch, image width (so memory length), steps and past length. Export uses the
TorchScript-based exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``,
which is not a dependency. With ``quantize=True`` the MatMul weights are quantized to int8
(``onnxruntime.quantization.quantize_dynamic``); see ``benchmarks/bench_model.py`` for the
speed and accuracy change.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from omr_engine.inference.contract import (
    CONFIG_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    HYBRID_CTC_WEIGHT,
    VOCAB_FILE,
    io_names,
)
from omr_engine.model.config import ModelConfig
from omr_engine.model.network import OMRModel

__all__ = ["ExportError", "export_model"]


class ExportError(RuntimeError):
    """The exported graph does not reproduce the torch model."""


class _Encoder(nn.Module):
    def __init__(self, model: OMRModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        memory, valid = self.model.encoder(pixels, widths)
        cross = self.model.decoder.memory_kv(memory)
        out = (*[t for kv in cross for t in kv], valid)
        if self.model.cfg.ctc_head:
            out = (*out, *self.model.ctc(memory, valid))
        return out


class _DecoderStep(nn.Module):
    def __init__(self, model: OMRModel) -> None:
        super().__init__()
        self.model = model
        self.layers = model.cfg.dec_layers

    def forward(
        self, tokens: torch.Tensor, memory_valid: torch.Tensor, *flat: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        n = self.layers
        cross = [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
        past = [(flat[2 * n + 2 * i], flat[2 * n + 2 * i + 1]) for i in range(n)]
        logits, present, _ = self.model.decoder(tokens, cross, memory_valid, past)
        return (logits, *[t for kv in present for t in kv])


def _onnx_export(module: nn.Module, args: tuple[Any, ...], path: Path, **kw: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings and the exporter's deprecation note
        torch.onnx.export(module, args, str(path), dynamo=False, do_constant_folding=True, **kw)


def _quantize(src: Path, dst: Path) -> None:
    """int8 weights for MatMul/Gemm, activations quantized on the fly."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = src.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns through the root logger
    try:
        quantize_dynamic(
            str(pre),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
            per_channel=False,
        )
    finally:
        root.setLevel(level)


def _load_source(source: OMRModel | str | Path) -> tuple[OMRModel, dict[str, Any]]:
    if isinstance(source, OMRModel):
        return source, {}
    from omr_engine.model.train import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(source)
    info = {
        "checkpoint": str(source),
        "step": ckpt.get("step"),
        "best_val_ser": ckpt.get("best_val_ser"),
        "vocab_path": ckpt.get("vocab_path"),
    }
    return model_from_checkpoint(ckpt), info


def export_model(
    source: OMRModel | str | Path,
    out_dir: str | Path,
    *,
    vocab_path: str | Path | None = None,
    quantize: bool = False,
    opset: int = 17,
    check: bool = True,
    include_weights: bool = False,
    decoder_kind: str = "attention",
    ctc_weight: float = HYBRID_CTC_WEIGHT,
    beam: int | None = None,
) -> Path:
    """Write an ONNX model directory from a model or a checkpoint; returns ``out_dir``.

    ``check`` runs onnxruntime on the export inputs and raises ``ExportError`` when the
    fp32 outputs differ from torch. ``include_weights`` also writes ``weights.pt`` (model
    state in fp16, and config) so that training can continue from the shipped model
    (``init_from``). ``decoder_kind`` is what the runtime reads with by default:
    ``attention`` (the autoregressive decoder), ``ctc`` (the encoder's CTC head) or
    ``hybrid`` (both: :mod:`omr_engine.inference.joint`, the CTC head weighing
    ``ctc_weight``); ``beam`` is the beam the page pipeline reads with (None: its own).
    """
    if opset < 17:
        raise ValueError("opset must be >= 17")
    model, info = _load_source(source)
    cfg: ModelConfig = model.cfg
    if decoder_kind not in ("attention", "ctc", "hybrid") or (
        decoder_kind != "attention" and not cfg.ctc_head
    ):
        raise ValueError(
            "decoder_kind is 'attention', or 'ctc' or 'hybrid' for a model with a CTC head"
        )
    vocab_path = vocab_path or info.get("vocab_path")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().eval().cpu()  # the caller's model stays as it was
    if include_weights:
        # weights.pt is stored in fp16: round the weights first, so the ONNX files and
        # weights.pt hold exactly the same numbers
        model = model.half().float()

    # example inputs: two crops of different widths, three cached steps
    pp = cfg.preprocess
    width = 2 * pp.width_multiple
    pixels = torch.rand(2, 1, pp.height, width)
    widths = torch.tensor([width, width - pp.width_multiple // 2 - 3], dtype=torch.long)
    names = io_names(cfg.dec_layers)
    encoder = _Encoder(model)
    ctc_names = ["ctc_logits", "ctc_lengths"] if cfg.ctc_head else []
    encoder_names = [*names["cross"], "memory_valid", *ctc_names]
    with torch.no_grad():
        reference = dict(zip(encoder_names, encoder(pixels, widths), strict=True))
        flat_cross = [reference[n] for n in names["cross"]]
        cross = list(zip(flat_cross[0::2], flat_cross[1::2], strict=True))
        memory_valid = reference["memory_valid"]
        tokens = torch.full((2, 1), cfg.bos_id, dtype=torch.long)
        past = [
            tuple(torch.randn(2, cfg.dec_heads, 3, cfg.dec_head_dim) for _ in range(2))
            for _ in range(cfg.dec_layers)
        ]
        ref_logits, ref_present, _ = model.decoder(tokens, cross, memory_valid, past)
    flat_past = [t for kv in past for t in kv]
    reference["logits"] = ref_logits
    reference.update(zip(names["present"], [t for kv in ref_present for t in kv], strict=True))

    with tempfile.TemporaryDirectory() as tmp:
        enc_path, dec_path = Path(tmp) / ENCODER_FILE, Path(tmp) / DECODER_FILE
        # cross keys are (B, h, hd, S), values (B, h, S, hd)
        cross_axes = {n: {0: "batch", (3 if "_k." in n else 2): "memory"} for n in names["cross"]}
        _onnx_export(
            encoder,
            (pixels, widths),
            enc_path,
            input_names=["pixels", "widths"],
            output_names=encoder_names,
            dynamic_axes={
                "pixels": {0: "batch", 3: "width"},
                "widths": {0: "batch"},
                "memory_valid": {0: "batch", 1: "memory"},
                **cross_axes,
                **(
                    {"ctc_logits": {0: "batch", 1: "columns"}, "ctc_lengths": {0: "batch"}}
                    if ctc_names
                    else {}
                ),
            },
            opset_version=opset,
        )
        _onnx_export(
            _DecoderStep(model),
            (tokens, memory_valid, *flat_cross, *flat_past),
            dec_path,
            input_names=["tokens", "memory_valid", *names["cross"], *names["past"]],
            output_names=["logits", *names["present"]],
            dynamic_axes={
                "tokens": {0: "batch", 1: "steps"},
                "memory_valid": {0: "batch", 1: "memory"},
                "logits": {0: "batch", 1: "steps"},
                **cross_axes,
                **{n: {0: "batch", 2: "past"} for n in names["past"]},
                **{n: {0: "batch", 2: "total"} for n in names["present"]},
            },
            opset_version=opset,
        )
        if check:
            feeds = {"pixels": pixels, "widths": widths, "tokens": tokens}
            feeds.update(zip(names["past"], flat_past, strict=True))
            _check(enc_path, dec_path, feeds, reference)
        for path in (enc_path, dec_path):
            if quantize:
                _quantize(path, out_dir / path.name)
            else:
                shutil.copyfile(path, out_dir / path.name)

    if vocab_path is not None:
        shutil.copyfile(vocab_path, out_dir / VOCAB_FILE)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": cfg.to_dict(),
        "runtime": {
            "encoder": ENCODER_FILE,
            "decoder": DECODER_FILE,
            "precision": "int8" if quantize else "fp32",
            "ctc": bool(cfg.ctc_head),
            "decoder_kind": decoder_kind,
            "ctc_weight": ctc_weight,
            "beam": beam,
            "opset": opset,
            "vocab_size": cfg.vocab_size,
            "pad_id": cfg.pad_id,
            "bos_id": cfg.bos_id,
            "eos_id": cfg.eos_id,
            "max_len": cfg.max_len,
            "dec_layers": cfg.dec_layers,
            "dec_heads": cfg.dec_heads,
            "dec_head_dim": cfg.dec_head_dim,
        },
        "provenance": {k: v for k, v in info.items() if v is not None},
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if include_weights:
        # fp16 halves the file; loading into the fp32 model (train --init-from,
        # model_from_checkpoint) casts back exactly (the weights were rounded above)
        state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
        torch.save({"model": state, "model_config": cfg.to_dict()}, out_dir / "weights.pt")
    return out_dir


def _check(
    enc_path: Path,
    dec_path: Path,
    feeds: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
) -> None:
    """Run both graphs in onnxruntime (the decoder on the encoder's outputs) against torch."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    results: dict[str, np.ndarray] = {}
    inputs = {k: v.numpy() for k, v in feeds.items()}
    for path in (enc_path, dec_path):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        wanted = {i.name: inputs.get(i.name, results.get(i.name)) for i in sess.get_inputs()}
        outs = sess.run(None, wanted)
        results.update(zip([o.name for o in sess.get_outputs()], outs, strict=True))
    for name, ref in reference.items():
        diff = float(np.abs(results[name] - ref.numpy()).max())
        if diff > 1e-3:
            raise ExportError(f"{name} differs from torch by {diff:.3g}")
