"""The model directory contract shared by the exporter (training side) and the runtime:
file names, graph tensor names, format version. Changing any of these is a format change.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CONFIG_FILE",
    "ENCODER_FILE",
    "DECODER_FILE",
    "VOCAB_FILE",
    "HYBRID_CTC_WEIGHT",
    "io_names",
]

FORMAT_NAME = "deepmusic-ocr-onnx"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder.onnx"
VOCAB_FILE = "vocab.json"
# A hybrid reading's score: this share from the CTC head, the rest from the attention
# decoder (omr_engine.inference.joint); what a config without "ctc_weight" reads with.
HYBRID_CTC_WEIGHT = 0.3


def io_names(layers: int) -> dict[str, list[str]]:
    """Per-layer tensor names: ``cross`` (encoder outputs, decoder inputs), ``past``
    (decoder inputs) and ``present`` (decoder outputs), ordered k.0, v.0, k.1, v.1, ..."""

    def names(prefix: str) -> list[str]:
        return [f"{prefix}_{kv}.{i}" for i in range(layers) for kv in ("k", "v")]

    return {"cross": names("cross"), "past": names("past"), "present": names("present")}
