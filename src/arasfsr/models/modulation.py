"""Global coordinate modulation (paper Sec. 3.4, Eqs. 6-12).

The query's global coordinate ``x_s`` (in [-1, 1]) is positionally encoded (Eq. 6,
N = 10, the coordinate itself included) and drives sine layers whose outputs multiply
the hidden layers of the implicit MLP (Eqs. 7-9); each later layer sees the
concatenation of the modulated and unmodulated features (Eq. 10).

Choices where paper and authors' code differ, written down (docs/fidelity.md):
- Eq. 6 has ``pi`` in the frequencies; the authors' code omits it (``with_pi=False``).
- Eq. 11 feeds ``g_s`` to every sine layer; the authors' code chains them
  (``g_i = sin(W'_i g_{i-1})``, ``chained=True``). The paper's form lets the fast path
  compute every layer's modulation in one matrix product.
- Hidden layers read ``[m, s]`` (Eq. 10); the authors' code reads ``[s, m]``, and lays
  out the encoding as ``[x, sin f_0 x, cos f_0 x, ...]`` over both coordinates: both are
  permutations of weight columns, the same functions.
- The output layer reads the last modulated features ``m_L`` (the authors' code);
  the paper's "last output of s_i" would leave the last modulation unused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import fused


class PositionalEncoding(nn.Module):
    """(x, sin(2^0 pi x), cos(2^0 pi x), ..., sin(2^{N-1} pi x), cos(2^{N-1} pi x)); without
    the pi when ``with_pi=False`` (the authors' code)."""

    def __init__(self, in_dim: int = 2, n_freqs: int = 10, with_pi: bool = True) -> None:
        super().__init__()
        base = math.pi if with_pi else 1.0
        self.register_buffer("freqs", base * 2.0 ** torch.arange(n_freqs), persistent=False)
        self.out_dim = in_dim * (2 * n_freqs + 1)

    def forward(self, x: Tensor) -> Tensor:
        angles = x.unsqueeze(-1) * self.freqs.to(x.dtype)  # (..., in_dim, N)
        enc = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-3)
        return torch.cat([x, enc], dim=-1)


class ModulatedMLP(nn.Module):
    """The implicit MLP of Eqs. 7-12: ReLU layers, each multiplied by a sine of g_s.

    ``chained=True`` is the authors' code: sine layer i > 0 reads the previous sine
    layer's output (hidden x hidden) instead of g_s.
    """

    def __init__(self, in_dim: int, coord_dim: int, out_dim: int, hidden: list[int],
                 chained: bool = False) -> None:
        super().__init__()
        self.chained = chained
        self.layers = nn.ModuleList()
        self.mods = nn.ModuleList()
        prev = in_dim
        for i, h in enumerate(hidden):
            self.layers.append(nn.Linear(prev if i == 0 else 2 * prev, h))
            self.mods.append(nn.Linear(coord_dim if i == 0 or not chained else prev, h))
            prev = h
        self.out = nn.Linear(prev, out_dim)
        self._cache: dict[tuple[str, torch.dtype], tuple[tuple, Any]] = {}  # see _cached

    def modulations(self, g: Tensor, dtype: torch.dtype | None = None) -> list[Tensor]:
        """sin(W'_i g + b'_i) for every layer (Eq. 8): all from g_s, so one product per layer
        into one block each (chained: one layer after the other).

        The sine's argument stays in g's precision; only its result is stored in ``dtype``.
        (bf16 arguments were tried: the bf16 sine in place costs about what the cheaper
        product saves.)
        """
        if self.chained:
            out, cur = [], g
            for mod in self.mods:
                cur = torch.sin(mod(cur))
                out.append(cur if dtype is None else cur.to(dtype))
            return out
        # The bias rides in the product as a column against a ones input: F.linear would first
        # copy it into every row of the (queries x 4 layers x hidden) output, one more pass
        # over memory (oneDNN's fused bias, fused.linear, was slower for this thin product).
        g1 = torch.cat([g, g.new_ones(*g.shape[:-1], 1)], dim=-1)
        equal_widths = len({m.out_features for m in self.mods}) == 1
        if self.in_graph() or not equal_widths:
            weights = [torch.cat([m.weight, m.bias[:, None]], dim=1) for m in self.mods]
            if equal_widths:
                pre = torch.matmul(g1.unsqueeze(-3), torch.stack(weights).transpose(1, 2))
                return list(self._sine(pre, dtype).unbind(-3))
            pre = torch.matmul(g1, torch.cat(weights).t())
            return list(self._sine(pre, dtype).split([w.shape[0] for w in weights], -1))
        # Layer-major: each layer's modulation is one contiguous block. A column slice of one
        # (queries x L*H) product has rows strided by L*H, which the multiply that reads it
        # broadcast over the 4 neighbours reads slowly (tools/bench/decoder_ab.py --parts layout);
        # one product per layer into its block (a broadcast batched product was slower).
        stacked = self._modulation_weights(g.dtype)
        rows = g1.reshape(-1, g1.shape[-1])
        out = self._sines((rows.shape[0], stacked.shape[1]), rows, dtype,
                          lambda layer, target: torch.mm(rows, stacked[layer].t(), out=target))
        return [m.view(*g.shape[:-1], -1) for m in out]

    def in_graph(self) -> bool:
        """Whether the sine layers run in a traced graph or under autograd: then no out=
        operations and no cached weights."""
        return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or (
            torch.is_grad_enabled() and self.mods[0].weight.requires_grad)

    def sine_products(self, g: Tensor, bias: bool = True) -> Tensor:
        """``W'_i g (+ b'_i)`` for every sine layer, (L, N, H) in g's dtype. Computed in
        float64: an fp32 product can round differently with the number of rows, and a
        grid's rows and columns come in chunks of any size (then bf16 rounding can flip)."""
        stacked = self._modulation_weights(torch.float64)
        out = torch.matmul(g.double(), stacked[..., :-1].transpose(1, 2))
        if bias:
            out += stacked[:, None, :, -1]
        return out.to(g.dtype)

    def grid_modulations(self, by_row: Tensor, by_col: Tensor, dtype: torch.dtype | None = None) -> list[Tensor]:
        """:meth:`modulations` of a grid's queries (every row with every column, row-major),
        each (1, rows*cols, H), from :meth:`sine_products` of encodings that add up,
        ``g = g_row + g_col``: the product is linear, so ``W' g + b'`` is the row's product
        (with the bias) plus the column's, one broadcast add instead of a product per query."""
        n_rows, width = by_row.shape[1:]
        n_cols = by_col.shape[1]
        out = self._sines((n_rows, n_cols, width), by_row, dtype,
                          lambda layer, target: torch.add(by_row[layer, :, None], by_col[layer, None], out=target))
        return [m.view(1, n_rows * n_cols, width) for m in out]

    def _sines(self, shape: tuple[int, ...], like: Tensor, dtype: torch.dtype | None,
               argument: Callable[[int, Tensor], Tensor]) -> Tensor:
        """(L, *shape): every sine layer's ``sin(argument(layer, target))``, the argument
        written into ``target`` in ``like``'s precision; in another ``dtype`` the sine runs
        in place on one block of that precision, then is stored."""
        out = like.new_empty(len(self.mods), *shape, dtype=dtype or like.dtype)
        pre = like.new_empty(shape) if out.dtype != like.dtype else None
        for layer, block in enumerate(out):
            if pre is None:
                argument(layer, block).sin_()
            else:
                block.copy_(argument(layer, pre).sin_())
        return out

    def _modulation_weights(self, dtype: torch.dtype) -> Tensor:
        """The sine layers' [W' b'] stacked (L, H, in + 1) in ``dtype``."""
        return self._cached("mods", dtype, self.mods, lambda: torch.stack(
            [torch.cat([m.weight, m.bias[:, None]], dim=1) for m in self.mods]).detach().to(dtype))

    def _cached(self, name: str, dtype: torch.dtype, linears: Sequence[nn.Linear], build: Callable[[], Any]) -> Any:
        """``build()``, kept until one of ``linears``' weights changes (once per weights and
        dtype rather than once per chunk)."""
        key = tuple((lin.weight.data_ptr(), lin.weight._version, lin.bias._version) for lin in linears)
        hit = self._cache.get((name, dtype))
        if hit is None or hit[0] != key:
            hit = self._cache[name, dtype] = (key, build())
        return hit[1]

    @staticmethod
    def _sine(pre: Tensor, dtype: torch.dtype | None) -> Tensor:
        if dtype is None or dtype == pre.dtype:
            return torch.sin(pre)
        if pre.requires_grad:  # out= is not differentiable
            return torch.sin(pre).to(dtype)
        return torch.sin(pre, out=torch.empty_like(pre, dtype=dtype))

    def forward_hidden(self, h: Tensor, mods: list[Tensor]) -> Tensor:
        """Inference after the first linear layer; ``h`` is its pre-activation (overwritten).

        ``mods`` may have fewer leading dimensions than ``h`` (one per query, broadcast
        over the four neighbours). On a CPU each layer writes ``[m, s]`` into one buffer
        that the next layer's product reads whole, its bias and ReLU fused into the
        product (:mod:`.fused`). Elsewhere (and in an ONNX export) ``W [m, s]`` is
        ``W_m m + W_s s``, which saves the concatenation.
        """
        if fused.fusable(h, "relu"):
            return self._forward_hidden_fused(h, mods)
        s = h.relu_()
        m = s * mods[0]
        dt = m.dtype
        for layer, mod in zip(self.layers[1:], mods[1:]):
            w_m, w_s = layer.weight.to(dt).split(m.shape[-1], dim=1)
            s2 = s.reshape(-1, s.shape[-1])
            s = torch.addmm(layer.bias.to(dt), m.reshape(-1, m.shape[-1]), w_m.t()).addmm_(s2, w_s.t())
            s = s.relu_().view(*m.shape[:-1], -1)
            m = s * mod
        return self.out(m)

    def _forward_hidden_fused(self, h: Tensor, mods: list[Tensor]) -> Tensor:
        *layers, (w_out, b_out) = self._weights_in(h.dtype)
        buf, s = None, h
        for i, ((weight, bias), mod) in enumerate(zip(layers[1:], mods)):  # layer i + 1 reads [m_i, s_i]
            width = s.shape[-1]
            if buf is None or buf.shape[-1] != 2 * width:
                buf = h.new_empty(*h.shape[:-1], 2 * width)
            if i == 0:  # the first layer's ReLU writes s_0 straight into the buffer: one pass fewer
                s = torch.clamp_min(h, 0, out=buf[..., width:])
            else:
                buf[..., width:].copy_(s)
            torch.mul(s, mod, out=buf[..., :width])
            s = fused.linear_relu(buf, weight, bias)
        if buf is None:  # a single hidden layer
            s = h.relu_()
        # Out of place: the in-place bf16 multiply was the slower here.
        return fused.linear(torch.mul(s, mods[-1]), w_out, b_out)  # the last modulated features alone

    def _weights_in(self, dtype: torch.dtype) -> list[tuple[Tensor, Tensor]]:
        """Hidden and output layers' (weight, bias) in ``dtype``."""
        linears = [*self.layers, self.out]
        return self._cached("layers", dtype, linears, lambda: [(lin.weight.detach().to(dtype), lin.bias.detach().to(dtype))
                                                              for lin in linears])

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        """Eqs. 7-12 step by step for one input, every sine layer evaluated (the reference)."""
        s = torch.relu(self.layers[0](x))
        sine = torch.sin(self.mods[0](g))
        m = s * sine
        for layer, mod in zip(self.layers[1:], self.mods[1:]):
            s = torch.relu(layer(torch.cat([m, s], dim=-1)))
            sine = torch.sin(mod(sine if self.chained else g))
            m = s * sine
        return self.out(m)
