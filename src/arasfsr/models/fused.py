"""Linear layers with their bias (and ReLU) fused into the matrix product, for the fast path.

On a CPU the implicit decoders' matrix products are cheap (AMX, or AVX-512 in fp32); what
costs is every extra pass over the activations. ``torch.addmm`` first copies the bias
into its output and a separate ``relu_`` reads and writes it again; oneDNN's inner
product applies both while writing the result (``torch.ops.mkldnn._linear_pointwise``,
the op torch.compile's CPU backend emits). Elsewhere (CUDA, autograd, ONNX export,
tracing, builds without oneDNN) the plain ops compute the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_refused: set[tuple[torch.dtype, str]] = set()  # (dtype, post-op) oneDNN refused: not asked again


def fusable(x: Tensor, post_op: str = "none") -> bool:
    """Whether the fused CPU product applies to ``x``."""
    if x.device.type != "cpu" or torch.is_grad_enabled() or (x.dtype, post_op) in _refused:
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return False
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, post_op: str) -> Tensor:
    """``post_op(x @ weight.T + bias)`` for 2-D ``x``; ``post_op`` is "none" or "relu"."""
    if fusable(x, post_op):
        try:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, post_op, [], "")
        except RuntimeError:  # a shape or dtype this oneDNN build has no kernel for
            _refused.add((x.dtype, post_op))
    out = F.linear(x, weight, bias)
    return out.relu_() if post_op == "relu" else out


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` over the last axis of ``x``, the bias added by the product."""
    return _linear(x.reshape(-1, x.shape[-1]), weight, bias, "none").view(*x.shape[:-1], -1)


def linear_relu(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(F.linear(...))`` over the last axis of ``x``, in one pass over the output."""
    return _linear(x.reshape(-1, x.shape[-1]), weight, bias, "relu").view(*x.shape[:-1], -1)
