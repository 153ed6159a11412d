"""An independent oracle of the ARASFSR authors' released model (nycu-acm/ARASFSR).

Written from reading their code (``models/asfsr.py`` with ``mlp_sine_modulation_previous``,
``positional_embedding.Embedding``, ``CTM_model.HFVAE``, ``edsr``; ``test.batched_predict``;
``demo.py``), in plain ``torch.nn.functional`` on a dictionary of weight tensors named as in
their checkpoints, so that it shares nothing with ``arasfsr.models``. It also holds the two
DIINN decoders: DIINN's official one (robotic-vision-lab, ``ImplicitDecoder`` mode 3,
``init_q=False``) and the ARASFSR authors' own (``models/diinn.py`` + ``diinn_mlp.py``).

Where their code differs from the paper (see ``/work/brief/fidelity-notes.md``):
- positional encoding ``[x, sin(2^k x), cos(2^k x)]`` without pi, laid out
  ``x_y, x_x, sin(f0 x_y), sin(f0 x_x), cos(f0 x_y), cos(f0 x_x), sin(f1 x_y), ...``;
- sine layers chained: ``g_0 = sin(C_0 PE)``, ``g_i = sin(C_i g_{i-1})`` (C_i: hidden -> hidden);
- hidden layers read ``[s, m]`` (unmodulated first), the output layer reads ``m_L``;
- MLP input ``[unfolded (code, tokens), rel_coord, q_coord, rel_cell]`` with
  ``rel_cell = cell * (h, w) = 2 h / H``: twice the paper's ``r``;
- the frequency latent is sampled at inference (``eps`` here; ``None`` uses the mean).

Coordinates are ``(y, x)`` pixel centres in ``[-1, 1]``; images are normalised to
``[-1, 1]`` (``(x - 0.5) / 0.5``) before the encoders, as in their code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

Params = dict[str, Tensor]

CHUNK = 30000  # demo.py / test.py: bsize=30000
NEIGHBOUR_SHIFTS = ((-1, -1), (-1, 1), (1, -1), (1, 1))  # (dy, dx) in their loop order


def make_coord(shape: tuple[int, int], dtype: torch.dtype = torch.float32) -> Tensor:
    """``utils.make_coord``: pixel centres of an H x W grid, (H*W, 2), (y, x)."""
    seqs = [-1 + 1 / n + (2 / n) * torch.arange(n, dtype=dtype) for n in shape]
    return torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1).reshape(-1, 2)


def make_cell(shape: tuple[int, int], queries: int) -> Tensor:
    """The ``cell`` their data wrappers and demo pass: (2/H, 2/W) per query, (Q, 2)."""
    return torch.tensor([2 / shape[0], 2 / shape[1]]).expand(queries, 2).clone()


# -- encoders -------------------------------------------------------------------------
def _conv(p: Params, name: str, x: Tensor) -> Tensor:
    w = p[name + ".weight"]
    return F.conv2d(x, w, p.get(name + ".bias"), padding=w.shape[-1] // 2)


def _resblocks(p: Params, prefix: str, x: Tensor) -> Tensor:
    """conv-ReLU-conv residual blocks ``{prefix}{j}.body.{0,2}`` for j = 0, 1, ..."""
    j = 0
    while f"{prefix}{j}.body.0.weight" in p:
        x = x + _conv(p, f"{prefix}{j}.body.2", F.relu(_conv(p, f"{prefix}{j}.body.0", x)))
        j += 1
    return x


def edsr_baseline(p: Params, x: Tensor, prefix: str = "encoder.") -> Tensor:
    """EDSR without up-sampler (``no_upsampling``; mean shift unused in their forward)."""
    n = 0
    while f"{prefix}body.{n}.body.0.weight" in p:
        n += 1
    head = _conv(p, f"{prefix}head.0", x)
    body = _resblocks(p, f"{prefix}body.", head)
    return head + _conv(p, f"{prefix}body.{n}", body)


def hfvae(p: Params, inp: Tensor, eps: Tensor | None = None,
          prefix: str = "netCTM.") -> tuple[Tensor, Tensor, Tensor]:
    """``HFVAE``: (frequency tokens, mu, logvar). ``z = mu + eps * exp(logvar / 2)``;
    their code always draws ``eps`` (``eps=None`` here takes the mean instead)."""
    e = prefix + "encoder."
    h = F.leaky_relu(_conv(p, e + "conv1", inp), 0.2)
    latent = _conv(p, e + "conv3", h + _conv(p, e + "conv2", _resblocks(p, e + "resblock.", h)))
    mu, logvar = latent.chunk(2, dim=1)
    z = mu if eps is None else mu + eps * torch.exp(0.5 * logvar)
    d = prefix + "decoder."
    h = F.leaky_relu(_conv(p, d + "conv1", z), 0.2)
    tokens = _conv(p, d + "conv3", h + _conv(p, d + "conv2", _resblocks(p, d + "resblock.", h)))
    return tokens, mu, logvar


def gen_feat(p: Params, inp: Tensor, eps: Tensor | None = None, frequency: bool = True) -> Tensor:
    """``LIIF.gen_feat`` of asfsr.py: encoder features, then the 8 tokens, concatenated."""
    feat = edsr_baseline(p, inp)
    if frequency:
        feat = torch.cat([feat, hfvae(p, inp, eps)[0]], dim=1)
    return feat


# -- the implicit decoder ---------------------------------------------------------------
def positional_encoding(x: Tensor, n_freqs: int = 10, with_pi: bool = False) -> Tensor:
    """``Embedding``: [x, sin(f_0 x), cos(f_0 x), ...], f_k = 2^k (the paper: pi 2^k)."""
    parts = [x]
    for k in range(n_freqs):
        f = 2.0 ** k * (math.pi if with_pi else 1.0)
        parts += [torch.sin(f * x), torch.cos(f * x)]
    return torch.cat(parts, dim=-1)


def _linear(p: Params, name: str, x: Tensor) -> Tensor:
    w = p[name + ".weight"]
    return F.linear(x, w.reshape(w.shape[0], -1), p[name + ".bias"])


def _count(p: Params, fmt: str) -> int:
    n = 0
    while fmt.format(n) in p:
        n += 1
    return n


def modulated_mlp(p: Params, x: Tensor, g: Tensor, prefix: str = "imnet.") -> Tensor:
    """``mlp_sine_modulation_previous``: chained sine layers, hidden layers read [s, m]."""
    s = F.relu(_linear(p, f"{prefix}I.0.0", x))
    g = torch.sin(_linear(p, f"{prefix}C.0.0", g))
    m = s * g
    for i in range(1, _count(p, prefix + "I.{}.0.weight")):
        s = F.relu(_linear(p, f"{prefix}I.{i}.0", torch.cat([s, m], dim=-1)))
        g = torch.sin(_linear(p, f"{prefix}C.{i}.0", g))
        m = s * g
    return _linear(p, f"{prefix}output_linear", m)


def plain_mlp(p: Params, x: Tensor, prefix: str = "imnet.") -> Tensor:
    """``mlp``: Linear-ReLU pairs ``layers.{0,2,...}``, then a last Linear."""
    idx = sorted(int(k[len(prefix + "layers."):].split(".")[0]) for k in p
                 if k.startswith(prefix + "layers.") and k.endswith(".weight"))
    for i in idx[:-1]:
        x = F.relu(_linear(p, f"{prefix}layers.{i}", x))
    return _linear(p, f"{prefix}layers.{idx[-1]}", x)


def _nearest(img: Tensor, coord: Tensor) -> Tensor:
    """``grid_sample(mode='nearest', align_corners=False)`` at (B,Q,2) (y, x) -> (B,Q,C)."""
    return F.grid_sample(img, coord.flip(-1).unsqueeze(1), mode="nearest",
                         align_corners=False)[:, :, 0, :].permute(0, 2, 1)


def local_ensemble(feat: Tensor, coord: Tensor, decode, ensemble: bool = True) -> tuple[Tensor, list[Tensor]]:
    """LIIF's 4-neighbour loop: ``decode(q_feat, rel_coord, q_coord)`` per neighbour,
    area-weighted with the diagonal swap. Returns the prediction and the weights."""
    b, _, h, w = feat.shape
    feat_coord = make_coord((h, w), feat.dtype).to(feat.device).t().reshape(1, 2, h, w).expand(b, 2, h, w)
    shifts, eps = (NEIGHBOUR_SHIFTS, 1e-6) if ensemble else (((0, 0),), 0.0)
    preds, areas = [], []
    for dy, dx in shifts:
        shifted = coord.clone()
        shifted[..., 0] += dy / h + eps
        shifted[..., 1] += dx / w + eps
        shifted.clamp_(-1 + 1e-6, 1 - 1e-6)
        q_feat = _nearest(feat, shifted)
        q_coord = _nearest(feat_coord, shifted)
        rel = coord - q_coord
        rel = torch.stack([rel[..., 0] * h, rel[..., 1] * w], dim=-1)
        preds.append(decode(q_feat, rel, q_coord))
        areas.append((rel[..., 0] * rel[..., 1]).abs() + 1e-9)
    total = torch.stack(areas).sum(dim=0)
    if ensemble:
        areas = areas[::-1]  # their swaps 0<->3, 1<->2: each code weighs by the opposite area
    weights = [a / total for a in areas]
    out = 0
    for pred, wgt in zip(preds, weights):
        out = out + pred * wgt.unsqueeze(-1)
    return out, weights


def query_rgb(p: Params, feat: Tensor, inp: Tensor, coord: Tensor, cell: Tensor, *,
              q_coord_input: bool = True, modulation: bool = True, skip: bool = True,
              ensemble: bool = True, n_freqs: int = 10) -> Tensor:
    """asfsr.py's ``query_rgb``: normalised RGB (B,Q,3) at ``coord`` (B,Q,2).

    ``feat``: encoder features with the tokens already concatenated (B,C,h,w), not unfolded;
    ``inp``: the normalised LR image (for the bilinear skip); ``cell``: (B,Q,2) = 2/H, 2/W.
    Defaults are ``asfsr``; ``q_coord_input=False, modulation=False`` is ``asfsr_wo_glo``
    (their -G), ``skip=False`` is ``asfsr_wo_res`` (-S), tokens left out of ``feat`` -L.
    """
    b, c, h, w = feat.shape
    unfolded = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
    rel_cell = torch.stack([cell[..., 0] * h, cell[..., 1] * w], dim=-1)
    g = positional_encoding(coord, n_freqs) if modulation else None

    def decode(q_feat: Tensor, rel: Tensor, q_coord: Tensor) -> Tensor:
        parts = [q_feat, rel] + ([q_coord] if q_coord_input else []) + [rel_cell]
        x = torch.cat(parts, dim=-1)
        return modulated_mlp(p, x, g) if modulation else plain_mlp(p, x)

    out, _ = local_ensemble(unfolded, coord, decode, ensemble)
    if skip:
        out = out + F.grid_sample(inp, coord.flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border",
                                  align_corners=False)[:, :, 0, :].permute(0, 2, 1)
    return out


@torch.no_grad()
def authors_render(p: Params, lr: Tensor, size: tuple[int, int], eps: Tensor | None = None,
                   chunk: int = CHUNK, frequency: bool = True, clamp: bool = True, **query_kw) -> Tensor:
    """demo.py: ``lr`` (B,3,h,w in [0,1]) -> (B,3,H,W) in [0,1], clamped (as they do, unless
    ``clamp=False``), not yet quantised (:func:`to_pil_levels`)."""
    b = lr.shape[0]
    inp = (lr - 0.5) / 0.5
    feat = gen_feat(p, inp, eps, frequency)
    coord = make_coord(size, lr.dtype).to(lr.device).unsqueeze(0).expand(b, -1, -1)
    cell = make_cell(size, coord.shape[1]).to(lr).unsqueeze(0).expand(b, -1, -1)
    preds = [query_rgb(p, feat, inp, coord[:, i:i + chunk], cell[:, i:i + chunk], **query_kw)
             for i in range(0, coord.shape[1], chunk)]
    pred = torch.cat(preds, dim=1) * 0.5 + 0.5
    pred = pred.clamp(0, 1) if clamp else pred
    return pred.view(b, *size, 3).permute(0, 3, 1, 2)


def to_pil_levels(img: Tensor) -> Tensor:
    """``transforms.ToPILImage()`` of a float image: ``mul(255).byte()``, i.e. truncation."""
    return img.mul(255).byte()


# -- DIINN ----------------------------------------------------------------------------------
def _diinn_mlp(p: Params, z: Tensor, pos: Tensor, k_fmt: str, q_fmt: str, out: str) -> Tensor:
    """The dual network of both DIINN codes: k_0 = relu(K_0 z), s_0 = k_0 sin(Q_0 pos);
    k_i = relu(K_i [s, z]), s_i = k_i sin(Q_i s); out(s)."""
    s = F.relu(_linear(p, k_fmt.format(0), z)) * torch.sin(_linear(p, q_fmt.format(0), pos))
    for i in range(1, _count(p, k_fmt + ".weight")):
        k = F.relu(_linear(p, k_fmt.format(i), torch.cat([s, z], dim=-1)))
        s = k * torch.sin(_linear(p, q_fmt.format(i), s))
    return _linear(p, out, s)


def diinn_official(p: Params, feat: Tensor, size: tuple[int, int]) -> Tensor:
    """DIINN's ``ImplicitDecoder.forward`` (mode 3, init_q False): (B,3,H,W), normalised.

    The code of every output pixel is read by ``F.interpolate(mode='nearest-exact')`` of
    the unfolded map (source index ``floor((i + 0.5) * h / H)``: a centre on a boundary goes
    to the lower/right pixel), the same lookup for its centre; ``pos = (rel_y, rel_x, hw/HW)``.
    Their 1x1 convolutions are per-pixel linears (``decoder.K.{i}.0``, ``decoder.Q.{i}.0``,
    ``decoder.last_layer``; 4-D weights are flattened).
    """
    b, c, h, w = feat.shape
    big_h, big_w = size
    in_grid = make_coord((h, w), feat.dtype).to(feat.device).t().reshape(1, 2, h, w)
    up_grid = make_coord(size, feat.dtype).to(feat.device).t().reshape(1, 2, big_h, big_w)
    rel = up_grid - F.interpolate(in_grid, size=size, mode="nearest-exact")
    rel = torch.stack([rel[:, 0] * h, rel[:, 1] * w], dim=1)
    ratio = torch.full((1, 1, big_h, big_w), h * w / (big_h * big_w), dtype=feat.dtype, device=feat.device)
    pos = torch.cat([rel, ratio], dim=1).expand(b, -1, -1, -1)
    z = F.interpolate(F.unfold(feat, 3, padding=1).view(b, c * 9, h, w), size=size, mode="nearest-exact")
    rgb = _diinn_mlp(p, z.permute(0, 2, 3, 1), pos.permute(0, 2, 3, 1),
                     "decoder.K.{}.0", "decoder.Q.{}.0", "decoder.last_layer")
    return rgb.permute(0, 3, 1, 2)


def authors_diinn_query_rgb(p: Params, feat: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
    """The ARASFSR authors' DIINN (``models/diinn.py`` + ``diinn_mlp.py``): LIIF's local
    ensemble and lookup, the content branch reads the unfolded code, the positional branch
    ``[rel_coord, rel_cell]`` (4 numbers, rel_cell = 2 h / H); no skip."""
    b, c, h, w = feat.shape
    unfolded = F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)
    rel_cell = torch.stack([cell[..., 0] * h, cell[..., 1] * w], dim=-1)

    def decode(q_feat: Tensor, rel: Tensor, q_coord: Tensor) -> Tensor:
        return _diinn_mlp(p, q_feat, torch.cat([rel, rel_cell], dim=-1),
                          "imnet.K.{}.0", "imnet.Q.{}.0", "imnet.output_linear")

    return local_ensemble(unfolded, coord, decode)[0]


# -- toy weights ---------------------------------------------------------------------------
def _add_linear(p: Params, name: str, cin: int, cout: int, gen: torch.Generator) -> None:
    p[name + ".weight"] = torch.randn(cout, cin, generator=gen) / math.sqrt(cin)
    p[name + ".bias"] = torch.randn(cout, generator=gen) * 0.1


def _add_conv(p: Params, name: str, cin: int, cout: int, gen: torch.Generator) -> None:
    p[name + ".weight"] = torch.randn(cout, cin, 3, 3, generator=gen) / math.sqrt(9 * cin)
    p[name + ".bias"] = torch.randn(cout, generator=gen) * 0.1


def random_authors_params(n_feats: int = 8, n_resblocks: int = 1, tokens: int = 4, vae_width: int = 8,
                          vae_blocks: int = 1, hidden: tuple[int, ...] = (16, 16, 16), n_freqs: int = 10,
                          variant: str = "asfsr", seed: int = 0) -> Params:
    """Random weights with the shapes of their ``asfsr`` (or ``asfsr_wo_glo``) at a toy size.

    ``logvar`` comes out near 0, so sampling ``eps`` visibly changes the tokens.
    """
    gen = torch.Generator().manual_seed(seed)
    p: Params = {}
    _add_conv(p, "encoder.head.0", 3, n_feats, gen)
    for j in range(n_resblocks):
        _add_conv(p, f"encoder.body.{j}.body.0", n_feats, n_feats, gen)
        _add_conv(p, f"encoder.body.{j}.body.2", n_feats, n_feats, gen)
    _add_conv(p, f"encoder.body.{n_resblocks}", n_feats, n_feats, gen)
    for half, cin, cout in (("encoder", 3, 2 * vae_width), ("decoder", vae_width, tokens)):
        _add_conv(p, f"netCTM.{half}.conv1", cin, vae_width, gen)
        for j in range(vae_blocks):
            _add_conv(p, f"netCTM.{half}.resblock.{j}.body.0", vae_width, vae_width, gen)
            _add_conv(p, f"netCTM.{half}.resblock.{j}.body.2", vae_width, vae_width, gen)
        _add_conv(p, f"netCTM.{half}.conv2", vae_width, vae_width, gen)
        _add_conv(p, f"netCTM.{half}.conv3", vae_width, cout, gen)
    code = (n_feats + tokens) * 9
    if variant == "asfsr":
        in_dim, coord_dim = code + 2 + 2 + 2, 2 * (2 * n_freqs + 1)
        for i, width in enumerate(hidden):
            _add_linear(p, f"imnet.I.{i}.0", in_dim, width, gen)
            _add_linear(p, f"imnet.C.{i}.0", coord_dim, width, gen)
            in_dim, coord_dim = 2 * width, width
        _add_linear(p, "imnet.output_linear", hidden[-1], 3, gen)
    elif variant == "asfsr_wo_glo":
        in_dim = code + 2 + 2
        for i, width in enumerate(hidden):
            _add_linear(p, f"imnet.layers.{2 * i}", in_dim, width, gen)
            in_dim = width
        _add_linear(p, f"imnet.layers.{2 * len(hidden)}", hidden[-1], 3, gen)
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return p


def random_diinn_params(code_dim: int, hidden: tuple[int, ...] = (16, 16, 16), official: bool = True,
                        seed: int = 0) -> Params:
    """Decoder weights of DIINN's official code (``decoder.*``, pos = 3 numbers) or of the
    ARASFSR authors' DIINN (``imnet.*``, pos = 4 numbers), ``code_dim`` = 9 C."""
    gen = torch.Generator().manual_seed(seed)
    p: Params = {}
    k_fmt, q_fmt, out = (("decoder.K.{}.0", "decoder.Q.{}.0", "decoder.last_layer") if official
                         else ("imnet.K.{}.0", "imnet.Q.{}.0", "imnet.output_linear"))
    k_in, q_in = code_dim, 3 if official else 4
    for i, width in enumerate(hidden):
        _add_linear(p, k_fmt.format(i), k_in, width, gen)
        _add_linear(p, q_fmt.format(i), q_in, width, gen)
        k_in, q_in = width + code_dim, width
    _add_linear(p, out, hidden[-1], 3, gen)
    return p
