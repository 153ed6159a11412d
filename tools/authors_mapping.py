"""State-dict name and layout mappings between the project's models and the authors' code.

The oracle (``authors_reference.py``) takes weights named as in the authors' checkpoints;
these functions turn a project state dict into such a dictionary (and, for ARASFSR, back),
so the same random weights drive both. They read names and shapes only, no model class.

ARASFSR layouts that differ only by a permutation (same function, other parameterisation):
- their hidden layers read ``[s, m]``, ours ``[m, s]``: the two column halves swap;
- their positional encoding is ``[x, sin f0 x (y, x), cos f0 x (y, x), ...]``, ours
  ``[x, (sin, cos) per frequency for y, then for x]``: the columns of the first sine
  layer permute (:func:`pe_columns_ours_from_authors`).
"""

from __future__ import annotations

from torch import Tensor

SD = dict[str, Tensor]


def pe_columns_ours_from_authors(n_freqs: int) -> list[int]:
    """Column ``j`` of our positional encoding is column ``perm[j]`` of theirs."""
    perm = [0, 1]
    for channel in range(2):
        for k in range(n_freqs):
            perm += [2 + 4 * k + channel, 2 + 4 * k + 2 + channel]  # sin, cos
    return perm


def encoder_to_authors(sd: SD, prefix: str = "encoder.") -> SD:
    """Our EDSR names -> theirs (their ``head`` is a Sequential; their mean shifts are unused)."""
    return {k.replace(prefix + "head.", prefix + "head.0."): v for k, v in sd.items() if k.startswith(prefix)}


# frequency module: ours (_Trunk: head.0, body.0..n-1 blocks, body.n conv, tail) <-> HFVAE
def _trunk_to_authors(rest: str, blocks: int) -> str:
    for ours, theirs in (("head.0.", "conv1."), (f"body.{blocks}.", "conv2."), ("body.", "resblock."),
                         ("tail.", "conv3.")):
        if rest.startswith(ours):
            return theirs + rest[len(ours):]
    raise KeyError(rest)


def frequency_to_authors(sd: SD, blocks: int) -> SD:
    out = {}
    for half in ("encoder", "decoder"):
        src = f"frequency.{half}."
        out.update({f"netCTM.{half}.{_trunk_to_authors(k[len(src):], blocks)}": v
                    for k, v in sd.items() if k.startswith(src)})
    return out


def _swap_halves(w: Tensor) -> Tensor:
    half = w.shape[1] // 2
    return w[:, list(range(half, 2 * half)) + list(range(half))]


def arasfsr_authors_to_ours(p: SD, n_freqs: int = 10) -> SD:
    """Their ``asfsr`` checkpoint -> the proposed ``variant: authors`` state dict (our names:
    ``imnet.layers.i``, ``imnet.mods.i`` (i >= 1 of shape hidden x hidden), ``imnet.out``;
    ``layers.0`` keeps their column order [code, rel_coord, q_coord, rel_cell])."""
    out: SD = {}
    for k, v in p.items():
        if k.startswith("encoder."):
            if ".sub_mean." in k or ".add_mean." in k:
                continue
            out[k.replace("encoder.head.0.", "encoder.head.")] = v
        elif k.startswith("netCTM."):
            half, rest = k[len("netCTM."):].split(".", 1)
            for ours, theirs in (("head.0.", "conv1."), ("tail.", "conv3."), ("body.", "resblock.")):
                if rest.startswith(theirs):
                    rest = ours + rest[len(theirs):]
                    break
            else:
                if rest.startswith("conv2."):
                    blocks = sum(1 for q in p if q.startswith(f"netCTM.{half}.resblock.") and q.endswith("body.0.weight"))
                    rest = f"body.{blocks}." + rest[len("conv2."):]
            out[f"frequency.{half}.{rest}"] = v
        elif k.startswith("imnet.I."):
            i, _, kind = k[len("imnet.I."):].split(".")
            out[f"imnet.layers.{i}.{kind}"] = v if i == "0" or kind == "bias" else _swap_halves(v)
        elif k.startswith("imnet.C."):
            i, _, kind = k[len("imnet.C."):].split(".")
            first = i == "0" and kind == "weight"
            out[f"imnet.mods.{i}.{kind}"] = v[:, pe_columns_ours_from_authors(n_freqs)] if first else v
        elif k.startswith("imnet.output_linear."):
            out["imnet.out." + k.rsplit(".", 1)[1]] = v
        else:
            raise KeyError(k)
    return out


def arasfsr_ours_to_authors(sd: SD, blocks: int, n_freqs: int = 10) -> SD:
    """Inverse of :func:`arasfsr_authors_to_ours` (the frequency module has ``blocks`` blocks)."""
    inverse = [0] * (2 * (2 * n_freqs + 1))
    for j, src in enumerate(pe_columns_ours_from_authors(n_freqs)):
        inverse[src] = j
    out = {**encoder_to_authors(sd), **frequency_to_authors(sd, blocks)}
    for k, v in sd.items():
        if k.startswith("imnet.layers."):
            i, kind = k[len("imnet.layers."):].split(".")
            out[f"imnet.I.{i}.0.{kind}"] = v if i == "0" or kind == "bias" else _swap_halves(v)
        elif k.startswith("imnet.mods."):
            i, kind = k[len("imnet.mods."):].split(".")
            out[f"imnet.C.{i}.0.{kind}"] = v[:, inverse] if (i, kind) == ("0", "weight") else v
        elif k.startswith("imnet.out."):
            out["imnet.output_linear." + k.rsplit(".", 1)[1]] = v
    return out


def diinn_to_official(sd: SD) -> SD:
    """Our DIINN (content.i, position.i, out) -> DIINN's code (decoder.K.i.0, decoder.Q.i.0,
    decoder.last_layer; 1x1 convolutions)."""
    out: SD = {}
    for k, v in sd.items():
        for ours, theirs in (("content.", "decoder.K."), ("position.", "decoder.Q.")):
            if k.startswith(ours):
                i, kind = k[len(ours):].split(".")
                out[f"{theirs}{i}.0.{kind}"] = v[..., None, None] if kind == "weight" else v
        if k.startswith("out."):
            out["decoder.last_layer." + k[4:]] = v[..., None, None] if k.endswith("weight") else v
    return out
