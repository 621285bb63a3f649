"""Model configuration: one dataclass, named presets, saved as JSON beside the weights.

This module does not import torch, so the app and the runtime can read a config too.

Presets (parameter counts for a vocabulary of ~7,800 tokens; speed and size measured by
``benchmarks/bench_model.py``):

- ``tiny``: for unit tests only.
- ``small``: staff crops at 64 px height; ~2.3M parameters (width 128: at 192 the model is
  2.3x slower to train on a CPU for 2x the parameters); meant to train on a 2-core CPU in a
  couple of hours and to read staff crops on a CPU. Its first encoder layer attends over
  the 2D patch grid, then each column's 8 rows are merged into one vector, so the other
  layers and the decoder see W/8 positions instead of 8 x W/8 (1.5-2x faster per step).
- ``base``: system crops at 128 px height; ~30M parameters; meant for a GPU; its int8 ONNX
  export stays under 50 MB.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from omr_engine.inference.preprocess import PreprocessConfig

__all__ = ["ModelConfig", "PRESETS"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network (and preprocess its input)."""

    name: str = "custom"
    # vocabulary (filled from the vocabulary by ``with_vocab``)
    vocab_size: int = 99
    factor_sizes: tuple[int, ...] = (8, 16, 8)  # distinct ids per factor column
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    token_rank: int = 32  # rank of the per-token embedding added to the factor sum (0 = none)
    # encoder
    d_model: int = 192
    stem_channels: tuple[int, int] = (32, 64)  # conv stem widths at stride 2 and 4
    enc_layers: int = 4
    enc_heads: int = 4
    enc_mlp_ratio: float = 4.0
    window: int = 8  # local attention window, in patch columns
    global_layers: tuple[int, ...] = (3,)  # encoder layers (0-based) with global attention
    # after this encoder layer (0-based) the patch rows of each column are merged into one
    # column vector (a linear map of the concatenated rows); -1 = never. Later layers and
    # the decoder then see C instead of R*C positions: ~R times cheaper, which is what makes
    # a CPU-trainable model possible; pitch stays readable from the merged vector.
    merge_rows_after: int = -1
    # decoder
    dec_layers: int = 3
    dec_heads: int = 4
    n_experts: int = 4
    top_k: int = 2
    expert_hidden: int = 384
    max_len: int = 512  # longest token sequence, BOS included
    dropout: float = 0.0
    # auxiliary CTC head on the encoder (training only, not exported): speeds up learning to
    # align decoder steps with image columns; needs targets in left-to-right order (staffs)
    ctc_head: bool = False
    # CTC frames per patch column: a column 8 px wide can hold a chord of three notes
    # (five tokens), which one frame per column cannot spell; each column's vector is
    # projected to this many frames (measured in docs/TRAINING.md, run 4n)
    ctc_upsample: int = 1
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)

    def __post_init__(self) -> None:
        if self.d_model % self.enc_heads or self.d_model % self.dec_heads:
            raise ValueError("d_model must be divisible by enc_heads and dec_heads")
        if not 1 <= self.top_k <= self.n_experts:
            raise ValueError("need 1 <= top_k <= n_experts")
        if self.window % 2:
            raise ValueError("window must be even (shifted windows move by window // 2)")
        if any(not 0 <= i < self.enc_layers for i in self.global_layers):
            raise ValueError("global_layers must index encoder layers")
        if not -1 <= self.merge_rows_after < self.enc_layers:
            raise ValueError("merge_rows_after must be -1 or index an encoder layer")
        if self.preprocess.width_multiple != self.preprocess.patch_size * self.window:
            raise ValueError(
                "preprocess.width_multiple must equal patch_size * window "
                f"({self.preprocess.patch_size} * {self.window})"
            )
        if self.preprocess.patch_size != 8:
            raise ValueError("the conv stem has a fixed stride of 8: patch_size must be 8")
        if not 1 <= self.ctc_upsample <= 4:
            raise ValueError("ctc_upsample must be 1 to 4 frames per column")
        if min(self.factor_sizes, default=0) < 1:
            raise ValueError("every factor needs at least one id")

    # --- derived -----------------------------------------------------------------------
    @property
    def patch_rows(self) -> int:
        return self.preprocess.height // self.preprocess.patch_size

    @property
    def memory_rows(self) -> int:
        """Rows of the encoder memory: the patch rows, or 1 once rows are merged."""
        return 1 if self.merge_rows_after >= 0 else self.patch_rows

    @property
    def dec_head_dim(self) -> int:
        return self.d_model // self.dec_heads

    # --- construction ------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named preset (``tiny``, ``small``, ``base``) with optional field overrides."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def with_vocab(self, vocab: Any) -> ModelConfig:
        """Copy with the vocabulary fields taken from a vocabulary object (duck-typed)."""
        return replace(
            self,
            vocab_size=len(vocab),
            factor_sizes=tuple(int(s) for s in vocab.factor_sizes()),
            pad_id=int(vocab.pad_id),
            bos_id=int(vocab.bos_id),
            eos_id=int(vocab.eos_id),
        )

    # --- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        if "preprocess" in data:
            data["preprocess"] = PreprocessConfig.from_dict(data["preprocess"])
        for name in ("factor_sizes", "stem_channels", "global_layers"):
            if name in data:
                data[name] = tuple(data[name])
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny",
        token_rank=8,
        d_model=32,
        stem_channels=(8, 16),
        enc_layers=2,
        enc_heads=2,
        enc_mlp_ratio=2.0,
        window=4,
        global_layers=(1,),
        dec_layers=2,
        dec_heads=2,
        n_experts=4,
        top_k=2,
        expert_hidden=32,
        max_len=64,
        ctc_head=True,
        preprocess=PreprocessConfig(height=32, max_width=512, width_multiple=32),
    ),
    "small": ModelConfig(
        name="small",
        token_rank=32,
        d_model=128,
        stem_channels=(24, 48),
        enc_layers=4,
        enc_heads=4,
        enc_mlp_ratio=2.0,
        window=8,
        global_layers=(3,),
        merge_rows_after=0,
        dec_layers=3,
        dec_heads=4,
        n_experts=4,
        top_k=2,
        expert_hidden=256,
        max_len=384,
        dropout=0.0,
        ctc_head=True,
        preprocess=PreprocessConfig(height=64, max_width=1536, width_multiple=64),
    ),
    "base": ModelConfig(
        name="base",
        token_rank=64,
        d_model=384,
        stem_channels=(48, 96),
        enc_layers=8,
        enc_heads=6,
        enc_mlp_ratio=4.0,
        window=8,
        global_layers=(3, 7),
        dec_layers=4,
        dec_heads=6,
        n_experts=4,
        top_k=2,
        expert_hidden=768,
        max_len=1024,
        dropout=0.1,
        preprocess=PreprocessConfig(height=128, max_width=2048, width_multiple=64),
    ),
}
