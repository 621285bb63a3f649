"""Runtime recognition with onnxruntime: needs numpy, OpenCV and onnxruntime, never torch.

``Recognizer`` (in ``session``) loads an exported model directory; ``preprocess`` holds the
image preprocessing shared with training; ``decoding`` the greedy, beam and CTC search; ``measures`` cuts a staff's tokens into the
layout's measures.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Recognizer", "Result", "ModelLoadError", "ProviderError", "PreprocessConfig"]


def __getattr__(name: str) -> Any:  # lazy, so importing preprocess does not load onnxruntime
    if name in ("Recognizer", "ModelLoadError", "ProviderError"):
        from omr_engine.inference import session

        return getattr(session, name)
    if name == "Result":
        from omr_engine.inference.decoding import Result

        return Result
    if name == "PreprocessConfig":
        from omr_engine.inference.preprocess import PreprocessConfig

        return PreprocessConfig
    raise AttributeError(name)
