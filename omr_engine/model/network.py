"""The recognition network: one crop image -> a sequence of token ids.

Read top to bottom, nanoGPT style. Shapes: B batch, H/W image height/width in pixels,
R/C patch rows/columns (H/8, W/8), S = R*C memory length, D model width, T tokens,
P cached tokens, V vocabulary, E experts, L decoder layers, h heads, hd head width.

Encoder
    A conv stem (three stride-2 convolutions) turns the crop into a grid of 8x8-pixel
    patches, (B, R, C, D). Positions: a learned embedding per patch *row* plus a sinusoidal
    embedding per patch *column*. Rows are staff-relative because the layout stage cuts and
    resizes crops so the staff lines always land on the same pixel rows (a staff crop is
    centred with fixed margins), so row r means "this high relative to the staff", i.e. a
    pitch position; columns are plain reading positions and the sinusoid extends to any
    width. Most layers attend inside windows of ``window`` patch columns (all rows of the
    window: a symbol and its neighbours), alternately shifted by half a window (Swin) so
    information crosses window borders; the layers in ``global_layers`` attend over the
    whole crop (layout, key and clef context). Right-hand padding is masked everywhere, so
    a crop gives the same memory alone or in a padded batch.

Decoder
    An autoregressive pre-norm transformer: causal self-attention (KV cache for incremental
    decoding), cross-attention to the encoder memory (its keys/values are computed once per
    crop, keys stored transposed and pre-scaled so a step does no work on them), and a
    mixture-of-experts feed-forward layer with top-k routing and a
    Switch-style load-balancing loss. A token is embedded as the sum of its factor
    embeddings (kind + pitch + duration ...) plus a low-rank per-token embedding; the output
    projection is tied to that same (V, D) matrix, so rare pitch/duration combinations share
    what frequent ones learned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from omr_engine.model.config import ModelConfig

__all__ = ["OMRModel", "ForwardOutput", "NEG_INF"]

# Additive mask value. Finite, so a query whose keys are all padding (a window entirely in
# the right-hand padding) gets a uniform softmax instead of NaN; exp(-1e4) is 0 in fp16/bf16.
NEG_INF = -1e4

KV = tuple[torch.Tensor, torch.Tensor]  # keys and values, each (B, h, T, hd)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(N, T, D) -> (N, h, T, hd)"""
    n, t, d = x.shape
    return x.view(n, t, heads, d // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(N, h, T, hd) -> (N, T, D)"""
    n, h, t, hd = x.shape
    return x.transpose(1, 2).reshape(n, t, h * hd)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of a (B, C, H, W) map: per position, so independent of the
    batch and of the padding (unlike BatchNorm/GroupNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvStem(nn.Module):
    """(B, 1, H, W) -> (B, H/8, W/8, D): three stride-2 convolutions, one stride-1 between."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c1, c2 = cfg.stem_channels
        self.convs = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1),  # H/2
            LayerNorm2d(c1),
            nn.GELU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),  # H/4
            LayerNorm2d(c2),
            nn.GELU(),
            nn.Conv2d(c2, c2, 3, stride=1, padding=1),  # H/4
            LayerNorm2d(c2),
            nn.GELU(),
            nn.Conv2d(c2, cfg.d_model, 3, stride=2, padding=1),  # H/8
        )
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.norm(self.convs(pixels).permute(0, 2, 3, 1))  # (B, R, C, D)


class SelfAttention(nn.Module):
    """Multi-head self-attention with an additive key mask."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor) -> torch.Tensor:
        # x: (N, T, D); key_bias: (N, T), 0 for real keys and NEG_INF for padding
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (_split_heads(t, self.heads) for t in (q, k, v))  # (N, h, T, hd)
        mask = key_bias[:, None, None, :].to(q.dtype)  # (N, 1, 1, T)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(_merge_heads(y))


class MLP(nn.Module):
    def __init__(self, d: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(d, hidden)
        self.proj = nn.Linear(hidden, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block over the patch grid, local (windowed) or global."""

    def __init__(self, cfg: ModelConfig, is_global: bool, shift: bool) -> None:
        super().__init__()
        d = cfg.d_model
        self.is_global = is_global
        self.window = cfg.window
        self.shift = shift and not is_global
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, cfg.enc_heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = MLP(d, int(d * cfg.enc_mlp_ratio), cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, col_bias: torch.Tensor) -> torch.Tensor:
        # x: (B, R, C, D); col_bias: (B, C) additive mask of padding columns
        a = (
            self._global(self.ln1(x), col_bias)
            if self.is_global
            else self._local(self.ln1(x), col_bias)
        )
        x = x + self.drop(a)
        return x + self.mlp(self.ln2(x))

    def _global(self, x: torch.Tensor, col_bias: torch.Tensor) -> torch.Tensor:
        b, r, c, d = x.shape
        bias = col_bias[:, None, :].expand(-1, r, -1).reshape(b, -1)  # (B, S)
        y = self.attn(x.reshape(b, -1, d), bias)  # (B, S, D)
        return y.view(b, r, c, d)

    def _local(self, x: torch.Tensor, col_bias: torch.Tensor) -> torch.Tensor:
        # C is a multiple of the window (preprocessing pads to patch_size * window), so the
        # windows tile the width; a shifted layer pads half a window on both sides instead
        # of rolling, which keeps the two ends of the crop apart without a special mask.
        b, r, c, d = x.shape
        w = self.window
        if self.shift:
            x = F.pad(x, (0, 0, w // 2, w // 2))  # (B, R, C + w, D)
            col_bias = F.pad(col_bias, (w // 2, w // 2), value=NEG_INF)
        xw = x.view(b, r, -1, w, d).permute(0, 2, 1, 3, 4).reshape(-1, r * w, d)  # (B*n, R*w, D)
        bw = col_bias.view(b, -1, 1, w).expand(-1, -1, r, -1).reshape(-1, r * w)  # (B*n, R*w)
        y = self.attn(xw, bw)
        y = y.view(b, -1, r, w, d).permute(0, 2, 1, 3, 4).reshape(b, r, -1, d)  # (B, R, C(+w), D)
        if self.shift:
            y = y[:, :, w // 2 : -(w // 2)]
        return y


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.stem = ConvStem(cfg)
        self.row_emb = nn.Parameter(torch.zeros(cfg.patch_rows, d))
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        blocks = []
        n_local = 0
        for i in range(cfg.enc_layers):
            is_global = i in cfg.global_layers
            blocks.append(EncoderBlock(cfg, is_global, shift=(n_local % 2 == 1)))
            n_local += 0 if is_global else 1
        self.blocks = nn.ModuleList(blocks)
        if cfg.merge_rows_after >= 0:
            self.row_merge = nn.Linear(cfg.patch_rows * d, d)
        self.norm = nn.LayerNorm(d)

    def column_encoding(self, c: int, device: torch.device) -> torch.Tensor:
        """Sinusoidal encoding of patch columns, (C, D)."""
        pos = torch.arange(c, device=device, dtype=torch.float32)
        ang = pos[:, None] * self.inv_freq[None, :]  # (C, D/2)
        return torch.stack([ang.sin(), ang.cos()], dim=-1).flatten(1)  # (C, D)

    def forward(
        self, pixels: torch.Tensor, widths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 1, H, W) float, widths (B,) int64 true widths in pixels ->
        memory (B, S, D), memory_valid (B, S) float (1 = real patch, 0 = padding)."""
        pp = self.cfg.preprocess
        if not torch.jit.is_tracing():
            if pixels.dim() != 4 or pixels.shape[1] != 1 or pixels.shape[2] != pp.height:
                raise ValueError(
                    f"expected pixels of shape (B, 1, {pp.height}, W), got {tuple(pixels.shape)}"
                )
            if pixels.shape[3] % pp.width_multiple:
                raise ValueError(
                    f"pixel width {pixels.shape[3]} is not a multiple of {pp.width_multiple}"
                )
        x = self.stem(pixels)  # (B, R, C, D)
        b, r, c, d = x.shape
        x = (
            x
            + self.row_emb[None, :, None, :]
            + self.column_encoding(c, x.device)[None, None].to(x.dtype)
        )
        cols = torch.arange(c, device=x.device) * pp.patch_size  # (C,) first pixel of each column
        valid = (cols[None, :] < widths[:, None]).to(torch.float32)  # (B, C)
        col_bias = (1.0 - valid) * NEG_INF
        for i, block in enumerate(self.blocks):
            x = block(x, col_bias)
            if i == self.cfg.merge_rows_after:
                x = self.row_merge(x.permute(0, 2, 1, 3).reshape(b, c, r * d))[:, None]
                r = 1  # (B, 1, C, D)
        memory = self.norm(x).reshape(b, -1, d)  # (B, S, D), row-major over (R, C)
        memory_valid = valid[:, None, :].expand(-1, r, -1).reshape(b, -1)  # (B, S)
        return memory, memory_valid


class TokenEmbedding(nn.Module):
    """(V, D) token matrix = sum of factor embeddings + low-rank per-token embedding.

    Used both to embed input tokens and (transposed) as the tied output projection.
    """

    def __init__(self, cfg: ModelConfig, factors: np.ndarray | torch.Tensor | None) -> None:
        super().__init__()
        v, n_f = cfg.vocab_size, len(cfg.factor_sizes)
        if factors is None:
            factors_t = torch.zeros(v, n_f, dtype=torch.long)  # filled by load_state_dict
        else:
            factors_t = torch.as_tensor(np.asarray(factors), dtype=torch.long)
            if tuple(factors_t.shape) != (v, n_f):
                raise ValueError(
                    f"factors must have shape ({v}, {n_f}), got {tuple(factors_t.shape)}"
                )
            for i, size in enumerate(cfg.factor_sizes):
                col = factors_t[:, i]
                if int(col.min()) < 0 or int(col.max()) >= size:
                    raise ValueError(f"factor column {i} has ids outside [0, {size})")
        self.register_buffer("factors", factors_t)  # (V, F), saved with the weights
        self.factor_emb = nn.ModuleList(nn.Embedding(n, cfg.d_model) for n in cfg.factor_sizes)
        self.rank = cfg.token_rank
        if self.rank:
            self.token_emb = nn.Embedding(v, self.rank)
            self.token_proj = nn.Linear(self.rank, cfg.d_model, bias=False)
        self.out_bias = nn.Parameter(torch.zeros(v))

    def table(self) -> torch.Tensor:
        w = sum(emb(self.factors[:, i]) for i, emb in enumerate(self.factor_emb))  # (V, D)
        if self.rank:
            w = w + self.token_proj(self.token_emb.weight)
        return w


class MoE(nn.Module):
    """Mixture-of-experts feed-forward: top-k routing over E GELU experts.

    All experts are evaluated densely and combined with the (sparse) top-k gates: with
    E <= 8 experts of this size that is cheaper than token dispatch on a CPU at batch 1 and
    on a GPU at training batch sizes, and it keeps the ONNX graph free of data-dependent
    shapes. Same function as sparse dispatch; swap in dispatch if E grows.
    """

    def __init__(self, d: int, hidden: int, n_experts: int, top_k: int, dropout: float) -> None:
        super().__init__()
        self.e, self.k, self.hidden = n_experts, top_k, hidden
        self.router = nn.Linear(d, n_experts, bias=False)
        # all experts side by side: expert e owns columns/rows [e*H, (e+1)*H)
        self.w_in = nn.Parameter(torch.randn(d, n_experts * hidden) * 0.02)
        self.b_in = nn.Parameter(torch.zeros(n_experts * hidden))
        self.w_out = nn.Parameter(torch.randn(n_experts * hidden, d) * 0.02)
        self.b_out = nn.Parameter(torch.zeros(n_experts, d))
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, token_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, T, D); token_mask: (B, T) float, 1 for tokens counted in the balance loss
        b, t, d = x.shape
        xf = x.reshape(-1, d)  # (N, D)
        probs = self.router(xf).float().softmax(-1)  # (N, E)
        top_p, top_i = probs.topk(self.k, dim=-1)  # (N, k)
        gates = torch.zeros_like(probs).scatter(-1, top_i, top_p)
        gates = gates / gates.sum(-1, keepdim=True)  # renormalised over the chosen k (GShard)
        g = gates.to(x.dtype)
        h = F.gelu(xf @ self.w_in + self.b_in)  # (N, E*H)
        h = (h.view(-1, self.e, self.hidden) * g[:, :, None]).view(-1, self.e * self.hidden)
        y = h @ self.w_out + g @ self.b_out  # (N, D) = sum_e g_e * expert_e(x), one GEMM
        # Switch-Transformer balance loss: E * sum_e f_e * P_e (1.0 when perfectly balanced),
        # f_e = share of the k routing slots sent to expert e, P_e = mean router probability.
        chosen = torch.zeros_like(probs).scatter(-1, top_i, 1.0)
        m = torch.ones_like(probs[:, 0]) if token_mask is None else token_mask.reshape(-1).float()
        denom = m.sum().clamp(min=1.0)
        f = (chosen * m[:, None]).sum(0) / (denom * self.k)
        p_mean = (probs * m[:, None]).sum(0) / denom
        balance = self.e * (f * p_mean).sum()
        return self.drop(y.view(b, t, d)), balance


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.heads = cfg.dec_heads
        self.dropout = cfg.dropout
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.self_proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.cross_q = nn.Linear(d, d)
        self.cross_kv = nn.Linear(d, 2 * d)  # applied to the memory once per crop
        self.cross_proj = nn.Linear(d, d)
        self.ln3 = nn.LayerNorm(d)
        self.moe = MoE(d, cfg.expert_hidden, cfg.n_experts, cfg.top_k, cfg.dropout)
        self.drop = nn.Dropout(cfg.dropout)

    def memory_kv(self, memory: torch.Tensor) -> KV:
        """memory (B, S, D) -> cross-attention keys, transposed and scaled by hd**-0.5,
        (B, h, hd, S), and values (B, h, S, hd)."""
        k, v = self.cross_kv(memory).chunk(2, dim=-1)
        k = _split_heads(k, self.heads)
        return (k * k.shape[-1] ** -0.5).transpose(2, 3), _split_heads(v, self.heads)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, D)
        cross: KV,  # keys (B, h, hd, S) pre-scaled, values (B, h, S, hd)
        memory_bias: torch.Tensor,  # (B, 1, 1, S)
        past: KV | None,  # 2 x (B, h, P, hd)
        self_mask: torch.Tensor | None,  # (T, P+T) bool, None = plain causal (no past)
        token_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, KV, torch.Tensor]:
        p = self.dropout if self.training else 0.0
        # causal self-attention, with the cache of earlier steps
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q, k, v = (_split_heads(t, self.heads) for t in (q, k, v))  # (B, h, T, hd)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, h, P+T, hd)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v)
        if self_mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self_mask, dropout_p=p)
        x = x + self.drop(self.self_proj(_merge_heads(y)))
        # cross-attention to the encoder memory
        # (written out: the keys come pre-transposed and pre-scaled, see memory_kv)
        q = _split_heads(self.cross_q(self.ln2(x)), self.heads)  # (B, h, T, hd)
        att = (q @ cross[0] + memory_bias.to(q.dtype)).softmax(-1)  # (B, h, T, S)
        y = F.dropout(att, p, self.training) @ cross[1]  # (B, h, T, hd)
        x = x + self.drop(self.cross_proj(_merge_heads(y)))
        # mixture-of-experts feed-forward
        y, balance = self.moe(self.ln3(x), token_mask)
        return x + y, present, balance


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig, factors: np.ndarray | torch.Tensor | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = TokenEmbedding(cfg, factors)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.dec_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.scale = cfg.d_model**-0.5  # tied logits: unit-scale embeddings / sqrt(D)

    def memory_kv(self, memory: torch.Tensor) -> list[KV]:
        """memory (B, S, D) -> per layer (keys (B, h, hd, S), values (B, h, S, hd))."""
        return [blk.memory_kv(memory) for blk in self.blocks]

    def forward(
        self,
        tokens: torch.Tensor,  # (B, T) int64
        cross_kv: Sequence[KV],  # per layer, from memory_kv
        memory_valid: torch.Tensor,  # (B, S) float
        past_kv: Sequence[KV] | None = None,  # per layer 2 x (B, h, P, hd)
        token_mask: torch.Tensor | None = None,  # (B, T) float, for the balance loss
    ) -> tuple[torch.Tensor, list[KV], torch.Tensor]:
        """-> logits (B, T, V), per layer present (k, v) (B, h, P+T, hd), balance (scalar).

        Layers' caches are separate tensors (not one stacked array) so that a decoding step
        never copies the caches of all layers."""
        t = tokens.shape[1]
        p = 0 if past_kv is None else past_kv[0][0].shape[2]
        if not torch.jit.is_tracing() and p + t > self.cfg.max_len:
            raise ValueError(f"sequence of {p + t} tokens exceeds max_len {self.cfg.max_len}")
        table = self.embed.table()  # (V, D)
        pos = torch.arange(t, device=tokens.device) + p  # (T,)
        x = self.drop(F.embedding(tokens, table) + self.pos_emb(pos)[None])  # (B, T, D)
        memory_bias = ((1.0 - memory_valid) * NEG_INF)[:, None, None, :]  # (B, 1, 1, S)
        self_mask = None
        if past_kv is not None:
            k_pos = torch.arange(t, device=tokens.device) + p  # query positions
            self_mask = torch.arange(t + p, device=tokens.device)[None, :] <= k_pos[:, None]
        presents, balances = [], []
        for i, blk in enumerate(self.blocks):
            past = None if past_kv is None else past_kv[i]
            x, present, balance = blk(x, cross_kv[i], memory_bias, past, self_mask, token_mask)
            presents.append(present)
            balances.append(balance)
        x = self.ln_f(x)
        logits = (x @ table.t().to(x.dtype)) * self.scale + self.embed.out_bias  # (B, T, V), tied
        return logits, presents, torch.stack(balances).mean()


@dataclass
class ForwardOutput:
    logits: torch.Tensor | None  # (B, T, V); None when the decoder was not run
    balance: torch.Tensor  # scalar MoE load-balancing loss
    ctc_logits: torch.Tensor | None = None  # (B, C, V+1), blank = V; only with a CTC head
    ctc_lengths: torch.Tensor | None = None  # (B,) valid patch columns


class OMRModel(nn.Module):
    """Encoder-decoder recogniser. ``factors`` is the vocabulary's (V, F) factor table; it
    is stored in the state dict, so a loaded checkpoint does not need it again."""

    def __init__(self, cfg: ModelConfig, factors: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg, factors)
        if cfg.ctc_head:
            # auxiliary CTC head over patch columns, tied to the token matrix (+ a blank)
            self.ctc_proj = nn.Linear(cfg.d_model, cfg.d_model * cfg.ctc_upsample)
            self.ctc_norm = nn.LayerNorm(cfg.d_model)
            self.ctc_blank = nn.Parameter(torch.zeros(cfg.d_model))
        self.apply(self._init_weights)
        # Embeddings at unit scale and logits = h . e / sqrt(D): with the tied output and the
        # GPT-2 init (std 0.02) the logits start ~100x too small for the decoder to commit,
        # which stalls learning for hundreds of steps at small widths.
        emb = self.decoder.embed
        for e in emb.factor_emb:
            nn.init.normal_(e.weight, std=len(emb.factor_emb) ** -0.5)  # the sum has std 1
        if emb.rank:
            nn.init.normal_(emb.token_emb.weight, std=1.0)
        nn.init.normal_(self.decoder.pos_emb.weight, std=1.0)
        # scaled init of residual projections (GPT-2)
        n_res = 2 * (cfg.enc_layers + cfg.dec_layers)
        for name, prm in self.named_parameters():
            if name.endswith(("proj.weight", "w_out")) and "token_proj" not in name:
                nn.init.normal_(prm, mean=0.0, std=0.02 / math.sqrt(n_res))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- timm-style split --------------------------------------------------------------
    def forward_features(
        self, pixels: torch.Tensor, widths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels (B, 1, H, W), widths (B,) -> memory (B, S, D), memory_valid (B, S)."""
        return self.encoder(pixels, widths)

    def encode(self, pixels: torch.Tensor, widths: torch.Tensor) -> tuple[list[KV], torch.Tensor]:
        """-> per layer cross (k, v) (B, h, S, hd), memory_valid (B, S): all the decoder needs."""
        memory, valid = self.encoder(pixels, widths)
        return self.decoder.memory_kv(memory), valid

    def forward(
        self,
        pixels: torch.Tensor,  # (B, 1, H, W)
        widths: torch.Tensor,  # (B,)
        tokens: torch.Tensor,  # (B, T): BOS + ids, padded
        token_mask: torch.Tensor | None = None,  # (B, T) float
        decode: bool = True,
    ) -> ForwardOutput:
        """Teacher-forced training pass; ``decode=False`` runs the encoder and CTC head
        alone (``logits`` is then None)."""
        memory, valid = self.encoder(pixels, widths)
        if decode:
            cross_kv = self.decoder.memory_kv(memory)
            logits, _, balance = self.decoder(tokens, cross_kv, valid, None, token_mask)
            out = ForwardOutput(logits, balance)
        else:
            out = ForwardOutput(None, memory.new_zeros(()))
        if self.cfg.ctc_head:
            out.ctc_logits, out.ctc_lengths = self.ctc(memory, valid)
        return out

    def ctc(self, memory: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """memory (B, S, D) -> CTC logits (B, C*k, V+1) over patch columns, k frames per
        column (``ctc_upsample``), and valid frames (B,)."""
        b, _, d = memory.shape
        r, k = self.cfg.memory_rows, self.cfg.ctc_upsample
        h = self.ctc_proj(memory.view(b, r, -1, d).mean(1))  # (B, C, k*D)
        h = self.ctc_norm(h.view(b, -1, d))  # (B, C*k, D): a column's frames in order
        table = torch.cat([self.decoder.embed.table(), self.ctc_blank[None]])  # (V+1, D)
        lengths = valid.view(b, r, -1)[:, 0].sum(1).long() * k  # (B,)
        # scaling the (B, C*k, D) vectors, not the (B, C*k, V+1) logits: one pass less
        return (h * d**-0.5) @ table.t().to(h.dtype), lengths

    def empty_cache(self, batch: int, like: torch.Tensor) -> list[KV]:
        """A zero-length KV cache for ``batch`` rows (dtype/device of ``like``)."""
        cfg = self.cfg
        z = like.new_zeros(batch, cfg.dec_heads, 0, cfg.dec_head_dim)
        return [(z, z) for _ in range(cfg.dec_layers)]

    @torch.no_grad()
    def generate(
        self, pixels: torch.Tensor, widths: torch.Tensor, max_len: int | None = None
    ) -> list[list[int]]:
        """Batched greedy decoding with the KV cache (the reference for the ONNX path)."""
        cfg = self.cfg
        max_len = min(max_len or cfg.max_len, cfg.max_len)
        cross_kv, valid = self.encode(pixels, widths)
        b = pixels.shape[0]
        past = self.empty_cache(b, cross_kv[0][0])
        tok = torch.full((b, 1), cfg.bos_id, dtype=torch.long, device=pixels.device)
        out = torch.zeros(b, 0, dtype=torch.long, device=pixels.device)
        done = torch.zeros(b, dtype=torch.bool, device=pixels.device)
        for _ in range(max_len - 1):
            logits, past, _ = self.decoder(tok, cross_kv, valid, past)
            tok = logits[:, -1].float().argmax(-1, keepdim=True)  # (B, 1)
            tok = tok.masked_fill(done[:, None], cfg.eos_id)
            out = torch.cat([out, tok], dim=1)
            done |= tok[:, 0] == cfg.eos_id
            if bool(done.all()):
                break
        return [_strip(row, cfg.eos_id) for row in out.tolist()]


def _strip(row: Sequence[int], eos: int) -> list[int]:
    row = list(row)
    return row[: row.index(eos)] if eos in row else row
