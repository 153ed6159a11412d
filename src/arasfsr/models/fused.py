"""Linear and convolution layers with their bias, activation or residual add fused into the
product, for inference on a CPU.

On a CPU the implicit decoders' matrix products are cheap (AMX, or AVX-512 in fp32); what
costs is every extra pass over the activations. ``torch.addmm`` first copies the bias
into its output and a separate ``relu_`` reads and writes it again; oneDNN's inner
product applies both while writing the result (``torch.ops.mkldnn._linear_pointwise``,
the op torch.compile's CPU backend emits). The encoders' convolutions likewise take their
ReLU and their residual add into oneDNN's convolution (``_convolution_pointwise``, also
what torch.compile emits), which saves two passes over a 64-channel map per residual
block. Elsewhere (CUDA, autograd, ONNX export, tracing, builds without oneDNN) the plain
ops compute the same.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import memory_problem

_refused: set[tuple[torch.dtype, str]] = set()  # (dtype, post-op) oneDNN refused: not asked again


def _refuse(exc: RuntimeError, dtype: torch.dtype, post_op: str) -> None:
    """Remember that oneDNN has no kernel for this; running out of memory is no refusal."""
    if memory_problem(exc) is not None:
        raise exc
    _refused.add((dtype, post_op))


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
        except RuntimeError as exc:  # a shape or dtype this oneDNN build has no kernel for
            _refuse(exc, x.dtype, post_op)
    out = F.linear(x, weight, bias)
    return out.relu_() if post_op == "relu" else out


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` over the last axis of ``x``, the bias added by the product."""
    return _linear(x.reshape(-1, x.shape[-1]), weight, bias, "none").view(*x.shape[:-1], -1)


def linear_relu(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``relu(F.linear(...))`` over the last axis of ``x``, in one pass over the output."""
    return _linear(x.reshape(-1, x.shape[-1]), weight, bias, "relu").view(*x.shape[:-1], -1)


def _conv_dtype(x: Tensor) -> torch.dtype:
    """The dtype F.conv2d would compute ``x`` in (autocast's, where it is on)."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def _fused_conv(x: Tensor, conv: nn.Conv2d, key: str, run: Callable[..., Tensor]) -> Tensor | None:
    """``run(x, weight, bias, *conv's padding, stride, dilation, groups)`` with oneDNN's fused
    convolution, in the dtype F.conv2d would compute in; None where it does not apply."""
    if not (fusable(x, "conv-" + key) and x.dim() == 4 and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str) and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return None
    dtype = _conv_dtype(x)
    bias = None if conv.bias is None else conv.bias.to(dtype)
    try:
        return run(x.to(dtype), conv.weight.to(dtype), bias, list(conv.padding), list(conv.stride),
                   list(conv.dilation), conv.groups)
    except RuntimeError as exc:
        _refuse(exc, x.dtype, "conv-" + key)
        return None


def conv2d(x: Tensor, conv: nn.Conv2d, post_op: str = "none", negative_slope: float = 0.0) -> Tensor:
    """``post_op(conv(x))``; ``post_op`` is "none", "relu" or "leaky_relu" (with ``negative_slope``)."""
    scalars = [negative_slope] if post_op == "leaky_relu" else []
    out = _fused_conv(x, conv, post_op, lambda *args: torch.ops.mkldnn._convolution_pointwise(
        *args, post_op, scalars, ""))
    if out is not None:
        return out
    out = conv(x)
    if post_op == "relu":
        return out.relu_()
    return F.leaky_relu_(out, negative_slope) if post_op == "leaky_relu" else out


def conv2d_add(x: Tensor, conv: nn.Conv2d, residual: Tensor) -> Tensor:
    """``conv(x) + residual``, the add done by the convolution as it writes its output."""
    if residual.shape[1] == conv.out_channels:
        out = _fused_conv(x, conv, "add", lambda x_, weight, *rest: torch.ops.mkldnn._convolution_pointwise.binary(
            x_, residual.to(x_.dtype), weight, *rest, "add", None, None, [], None))
        if out is not None:
            return out
    return conv(x) + residual
