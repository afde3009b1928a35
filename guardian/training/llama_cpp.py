"""The guardian model's forward pass with llama.cpp's arithmetic, in PyTorch: the parity reference.

ctransformers 0.2.27 runs the model through the llama.cpp it bundles (ggml of September 2023,
built for AVX2 with FMA). That computes differently from PyTorch in ways that move the logits
by up to ~0.05 on a long prompt, although the file's layout is exact:

- keys and values go through an f16 KV cache; the other operand of a product with an f16 matrix
  (the queries, the attention weights; with f16 weights, every layer's input) is rounded to f16;
- softmax reads exp, and SiLU its value, from f16 tables (`table_exp_f16[f16(x - max)]`);
- each dot product runs in four 8-lane FMA accumulators, 32 elements a step, reduced in a fixed
  order; f16 dot products add the elements past the last full step in double;
- sums of squares (RMSNorm) and of softmax weights run in double, one element after another;
- rotary angles are `theta *= powf(base, -2/dims)` per pair, through the C library's sincosf,
  and the compiler fused one product of each rotated pair into an FMA.

`last_logits` computes exactly that, operation by operation, in float32 with each rounding where
ggml rounds (an FMA is emulated in float64 with one correct rounding). On this machine it gives
ctransformers' logits bit for bit, so the parity test can hold the file to the issue's 1e-3 and
tell any change of layout, rotary convention or engine at once. `exp`, `expf` and `sincosf` come
from the C library llama.cpp links (glibc here); elsewhere correctly rounded values stand in,
which may differ by an ulp.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Sequence

import numpy as np
import torch

from guardian.training.export import Architecture
from guardian.training.slm import GuardianLM, rotary_angles

CHUNK = 1 << 17  # float64 elements per work array of `_dot`
STEP = 32  # elements per step of ggml's AVX dot products: four accumulators of eight lanes
_F32, _F64 = torch.float32, torch.float64


def last_logits(model: GuardianLM, tokens: Sequence[int]) -> torch.Tensor:
    """The next-token logits after `tokens` (float32, one per vocabulary piece), as llama.cpp computes them.

    The prompt is evaluated as one batch from an empty cache, as the runtime evaluates it.
    `model.file_type` "f16" rounds every activation entering a weight product to f16, as ggml does
    for f16 matrices (the weights themselves are f16 values already when read from such a file).
    """
    architecture = model.architecture
    heads, width, head_dim = architecture.heads, architecture.embedding, architecture.head_dim
    into_weights = _half if model.file_type == "f16" else _same
    count = len(tokens)
    sines, cosines = (table[:count] for table in _rotary(architecture))
    kq_scale = torch.tensor(1.0, dtype=_F32) / _sqrtf(torch.tensor(width / heads, dtype=_F32))
    causal = torch.ones(count, count, dtype=torch.bool).triu(1)
    exp_table, silu_table = _tables()
    x = model.token_embd.weight.detach()[torch.tensor(list(tokens))]
    for index, module in enumerate(model.blocks):
        block = {name.removesuffix(".weight"): weight.detach() for name, weight in module.named_parameters()}
        queries = 1 if index == architecture.layers - 1 else count  # the last layer: the last position only
        h = into_weights(_rms_norm(x, architecture.rms_epsilon) * block["attn_norm"])
        k = _rope(_dot(h, block["attn_k"]).view(count, heads, head_dim), sines, cosines)
        v = _dot(h, block["attn_v"]).view(count, heads, head_dim)
        q = _dot(h[-queries:], block["attn_q"]).view(queries, heads, head_dim)
        q = _rope(q, sines[-queries:], cosines[-queries:])
        mask = causal[-queries:]
        attended = torch.empty(queries, heads, head_dim, dtype=_F32)
        for head in range(heads):
            scores = _dot(_half(q[:, head]), _half(k[:, head]), f16=True) * kq_scale
            weights_of_positions = _softmax(scores.masked_fill(mask, float("-inf")), mask, exp_table)
            attended[:, head] = _dot(_half(weights_of_positions), _half(v[:, head]).T.contiguous(), f16=True)
        x = x[-queries:] + _dot(into_weights(attended.reshape(queries, width)), block["attn_output"])
        h = into_weights(_rms_norm(x, architecture.rms_epsilon) * block["ffn_norm"])
        gate = _lookup(silu_table, _dot(h, block["ffn_gate"]))
        x = x + _dot(into_weights(gate * _dot(h, block["ffn_up"])), block["ffn_down"])
    h = into_weights(_rms_norm(x, architecture.rms_epsilon) * model.output_norm.weight.detach())
    return _dot(h, model.output.weight.detach())[0]


# --- ggml's operations -----------------------------------------------------------------------------


def _dot(x: torch.Tensor, w: torch.Tensor, f16: bool = False) -> torch.Tensor:
    """(rows, n) x (outputs, n) -> (rows, outputs): ggml_vec_dot_f32, or ggml_vec_dot_f16 on f16 values."""
    chunk = max(1, CHUNK // (w.shape[0] * STEP))
    if x.shape[0] > chunk:  # a few rows at a time: the float64 work arrays stay in cache
        return torch.cat([_dot(x[start : start + chunk], w, f16) for start in range(0, x.shape[0], chunk)])
    x64, w64 = x.detach().to(_F64), w.detach().to(_F64)
    n = x.shape[1]
    full = n - n % STEP
    lanes = torch.zeros(x.shape[0], w.shape[0], STEP, dtype=_F32)
    for start in range(0, full, STEP):
        lanes = _fma(x64[:, None, start : start + STEP], w64[None, :, start : start + STEP], lanes)
    # x0 += x2, x1 += x3, x0 += x1; then the two 128-bit halves; then two horizontal adds
    eights = lanes.view(*lanes.shape[:2], 4, 8)
    pairs = (eights[..., 0, :] + eights[..., 2, :], eights[..., 1, :] + eights[..., 3, :])
    summed = pairs[0] + pairs[1]
    quad = summed[..., :4] + summed[..., 4:]
    total = (quad[..., 0] + quad[..., 1]) + (quad[..., 2] + quad[..., 3])
    if full == n:
        return total
    if f16:  # the rest: float products added in double
        wide = total.to(_F64)
        for i in range(full, n):
            wide = wide + (x[:, None, i] * w[None, :, i]).to(_F64)
        return wide.to(_F32)
    # The rest, as the compiler vectorised `sumf += x[i]*y[i]`: eight rounded products at a time
    # added in order, then the last few fused.
    eights_end = full + (n - full) // 8 * 8
    for i in range(full, eights_end):
        total = total + x[:, None, i] * w[None, :, i]
    for i in range(eights_end, n):
        total = _fma(x64[:, None, i], w64[None, :, i], total)
    return total


def _fma(a64: torch.Tensor, b64: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32(a * b + c) with one rounding; a and b hold float32 values (their product is exact in float64)."""
    c64 = c.to(_F64)
    total = torch.addcmul(c64, a64, b64)  # one float64 rounding of the exact a * b + c
    rounded = total.to(_F32)
    # Rounding that again to float32 goes wrong only where it landed exactly halfway between two
    # floats (common with f16-valued operands). There, round to odd: nudge it off the tie towards
    # the part float64 dropped (TwoSum), and round again.
    ties = ((total.view(torch.int64) & 0x1FFFFFFF) == 0x10000000).nonzero(as_tuple=True)
    if ties[0].numel():
        shape = total.shape
        exact = a64.expand(shape)[ties] * b64.expand(shape)[ties]
        addend, tied = c64.expand(shape)[ties], total[ties]
        back = tied - exact
        dropped = (exact - (tied - back)) + (addend - back)
        towards = torch.where(dropped > 0, torch.inf, -torch.inf).to(_F64)
        rounded[ties] = torch.where(dropped != 0, torch.nextafter(tied, towards), tied).to(_F32)
    return rounded


def _rms_norm(x: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Float squares summed in double one by one; mean in float; `x * (1.0f / sqrtf(mean + eps))`."""
    mean = (_sum_in_order((x * x).to(_F64)) / x.shape[1]).to(_F32)
    scale = torch.tensor(1.0, dtype=_F32) / _sqrtf(mean + torch.tensor(epsilon, dtype=_F32))
    return x * scale[:, None]


def _softmax(scores: torch.Tensor, mask: torch.Tensor, exp_table: torch.Tensor) -> torch.Tensor:
    """exp from the f16 table of f16(x - max), summed in double in order, scaled by (float)(1.0 / sum)."""
    exps = _lookup(exp_table, scores - scores.max(dim=1, keepdim=True).values).masked_fill(mask, 0.0)
    return exps * (1.0 / _sum_in_order(exps.to(_F64))).to(_F32)[:, None]


def _sum_in_order(rows: torch.Tensor) -> torch.Tensor:
    """Each row's sum, one element after another, as ggml's double loops add (PyTorch's sum pairs them)."""
    total = torch.zeros(rows.shape[0], dtype=rows.dtype)
    for column in range(rows.shape[1]):
        total = total + rows[:, column]
    return total


def _rope(x: torch.Tensor, sines: torch.Tensor, cosines: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs as the AVX2 build does: `x0*cos - x1*sin` and `x0*sin + x1*cos`, x0's products fused."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    sin, cos = sines[:, None, :], cosines[:, None, :]
    first = _fma(x0.to(_F64), cos.to(_F64), -(x1 * sin))
    second = _fma(x0.to(_F64), sin.to(_F64), x1 * cos)
    return torch.stack((first, second), dim=-1).flatten(-2)


def _lookup(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`table[f16(x)]`: ggml's f16 tables are indexed by the argument's f16 bits."""
    return table[x.to(torch.float16).view(torch.int16).to(torch.int64) & 0xFFFF]


def _sqrtf(x: torch.Tensor) -> torch.Tensor:
    """sqrtf, correctly rounded. (PyTorch's float32 sqrt is not: it is off by an ulp for ~1 value in 6.)"""
    return torch.sqrt(x.to(_F64)).to(_F32)


def _half(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).to(_F32)


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


# --- What ggml takes from the C library ------------------------------------------------------------


@functools.cache
def _libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    if library is None or not all(hasattr(library, symbol) for symbol in ("expf", "sincosf")):
        return None
    library.expf.argtypes, library.expf.restype = [ctypes.c_float], ctypes.c_float
    library.sincosf.argtypes = [ctypes.c_float, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    library.sincosf.restype = None
    return library


def _expf(values: np.ndarray) -> np.ndarray:
    library = _libm()
    if library is None:
        with np.errstate(over="ignore"):
            return np.exp(values.astype(np.float64)).astype(np.float32)
    return np.array([library.expf(float(value)) for value in values], dtype=np.float32)


@functools.cache
def _tables() -> tuple[torch.Tensor, torch.Tensor]:
    """ggml_init's tables: exp and SiLU (`x / (1.0f + expf(-x))`) for every f16 value, stored as f16."""
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        exp = _expf(every).astype(np.float16).astype(np.float32)
        silu = (every / (np.float32(1.0) + _expf(-every))).astype(np.float16).astype(np.float32)
    return torch.from_numpy(exp), torch.from_numpy(silu)


@functools.cache
def _rotary(architecture: Architecture) -> tuple[torch.Tensor, torch.Tensor]:
    """sin and cos per (position, pair) of ggml's angles, through the C library's sincosf."""
    theta = rotary_angles(architecture)
    library = _libm()
    if library is None:
        wide = theta.astype(np.float64)
        return torch.from_numpy(np.sin(wide).astype(np.float32)), torch.from_numpy(np.cos(wide).astype(np.float32))
    sines, cosines = np.empty_like(theta), np.empty_like(theta)
    sine, cosine = ctypes.c_float(), ctypes.c_float()
    for index, angle in np.ndenumerate(theta):
        library.sincosf(float(angle), ctypes.byref(sine), ctypes.byref(cosine))
        sines[index], cosines[index] = sine.value, cosine.value
    return torch.from_numpy(sines), torch.from_numpy(cosines)
