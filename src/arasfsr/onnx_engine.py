"""ONNX export of the implicit models, and an onnxruntime engine (extra ``arasfsr[onnx]``).

One ``.onnx`` file holds the whole model: inputs ``lr`` (B,3,h,w in [0,1]), ``coord``
(B,Q,2 pixel centres in [-1,1], ``(y, x)``) and ``ratio`` (B,2, the paper's
``[h/H, w/W]``); output ``rgb`` (B,Q,3 in [0,1]); every size is dynamic. It is the
fast path of :mod:`arasfsr.models.core`: the encoder ends in the first-layer projection,
whose tensors are named ``state_*``. The engine cuts the graph there (the cut points
are listed in the file's metadata), runs the encoder once per image and the query part
once per chunk of coordinates, so memory stays bounded as with PyTorch.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .errors import InputError, ModelError
from .models.core import Encoded, ImplicitSR, SuperResolver, coord_range, denormalise, normalise, scale_ratio
from .runtime import auto_chunk_size

OPSET = 17
META_STATE = "arasfsr_state"
META_BYTES = "arasfsr_bytes_per_query"


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ModelError("ONNX support needs the optional extra: pip install 'arasfsr[onnx]'") from None
    return onnx, onnxruntime


class _Encode(nn.Module):
    def __init__(self, model: ImplicitSR, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, lr: Tensor) -> tuple[Tensor, ...]:
        state = self.model.encode(normalise(lr))
        self.model.project(state)
        return tuple(getattr(state, k) for k in self.keys)


class _Query(nn.Module):
    def __init__(self, model: ImplicitSR, keys: tuple[str, ...], proj_extra: Tensor | None) -> None:
        super().__init__()
        self.model, self.keys = model, keys
        self.register_buffer("proj_extra", proj_extra)  # None where the model has no extras part

    def forward(self, coord: Tensor, ratio: Tensor, *tensors: Tensor) -> Tensor:
        state = Encoded(**dict(zip(self.keys, tensors)), proj_extra=self.proj_extra)
        return denormalise(self.model.query_fast(state, coord, ratio))


def _export(module: nn.Module, args: tuple, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]):
    onnx, _ = _require_onnx()
    buf = io.BytesIO()
    # The exporter restores the wrapper's training flag on everything inside it: keep it eval.
    torch.onnx.export(module, args, buf, input_names=inputs, output_names=outputs,
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


def export_onnx(model: SuperResolver, path: str | Path | None = None, lr_hw: tuple[int, int] = (16, 16),
                queries: int = 64):
    """Write ``model`` as one ONNX graph (lr, coord, ratio) -> rgb; returns the ModelProto.

    ``lr_hw`` and ``queries`` only size the example used for tracing: every axis is dynamic.
    """
    onnx, _ = _require_onnx()
    from onnx import compose

    if not isinstance(model, ImplicitSR) or not model.has_fast_path:
        raise ModelError(f"ONNX export supports the implicit models with a fast path, not {model.arch!r}")
    model = model.eval().float()
    keys = ("proj", *model.query_state())
    names = [f"state_{k}" for k in keys]
    lr = torch.rand(1, 3, *lr_hw)
    with torch.no_grad():
        state = model.encode(normalise(lr))
        model.project(state)
        coord = torch.rand(1, queries, 2) * 2 - 1
        ratio = scale_ratio(lr_hw, (lr_hw[0] * 3, lr_hw[1] * 3), 1)
        axes = {"lr": {0: "batch", 2: "h", 3: "w"}, "proj": {0: "bhw"}}
        for k, n in zip(keys, names):
            axes[n] = {i: f"{n}_{i}" for i in range(getattr(state, k).dim())}
        enc = _export(_Encode(model, keys).eval(), (lr,), ["lr"], names, axes)
        qry = _export(_Query(model, keys, state.proj_extra).eval(), (coord, ratio, *(getattr(state, k) for k in keys)),
                      ["coord", "ratio", *names], ["rgb"],
                      {"coord": {0: "batch", 1: "queries"}, "ratio": {0: "batch"},
                       "rgb": {0: "batch", 1: "queries"}, **{n: axes[n] for n in names}})
    # Internal names of the two graphs may clash; the interface names must not change.
    enc = compose.add_prefix(enc, "encode/", rename_inputs=False, rename_outputs=False)
    qry = compose.add_prefix(qry, "query/", rename_inputs=False, rename_outputs=False)
    merged = compose.merge_models(enc, qry, io_map=[(n, n) for n in names])
    for key, value in ((META_STATE, json.dumps(names)),
                       (META_BYTES, str(model.bytes_per_query(True))),
                       ("arasfsr_arch", model.arch), ("arasfsr_config", json.dumps(model.config))):
        merged.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(merged)
    if path is not None:
        Path(path).write_bytes(merged.SerializeToString())
    return merged


class OnnxEngine:
    """Runs an exported model with onnxruntime, encoder once, queries in chunks."""

    def __init__(self, model_or_path, providers: list[str] | None = None) -> None:
        onnx, ort = _require_onnx()
        if isinstance(model_or_path, (str, Path)):
            try:
                proto = onnx.load(str(model_or_path))
            except Exception as exc:  # onnx raises several kinds for unreadable files
                raise InputError(f"{model_or_path}: not a readable ONNX model ({exc})") from None
        else:
            proto = model_or_path
        meta = {p.key: p.value for p in proto.metadata_props}
        if META_STATE not in meta:
            raise ModelError("this ONNX file was not written by `arasfsr export`")
        self.state_names = json.loads(meta[META_STATE])
        self.bytes_per_query = int(meta.get(META_BYTES, 20000))
        self.arch = meta.get("arasfsr_arch", "")
        extractor = onnx.utils.Extractor(proto)
        opts = ort.SessionOptions()
        providers = providers or ["CPUExecutionProvider"]

        def session(inputs, outputs):
            part = extractor.extract_model(inputs, outputs)
            return ort.InferenceSession(part.SerializeToString(), opts, providers=providers)

        self.encoder = session(["lr"], self.state_names)
        self.query = session(["coord", "ratio", *self.state_names], ["rgb"])

    def render(self, lr: Tensor, size: tuple[int, int], chunk_size: int | None = None) -> Tensor:
        """Same contract as :meth:`SuperResolver.render` (CPU tensors in and out)."""
        lr = lr.detach().float().cpu()
        b = lr.shape[0]
        out_h, out_w = size
        chunk = chunk_size or auto_chunk_size(self.bytes_per_query, "cpu")
        per_image = max(1, chunk // b)
        state = self.encoder.run(self.state_names, {"lr": lr.numpy()})
        feeds = dict(zip(self.state_names, state))
        feeds["ratio"] = scale_ratio(lr.shape[-2:], size, b).numpy().astype(np.float32)
        out = torch.empty(b, 3, out_h * out_w)
        for start in range(0, out_h * out_w, per_image):
            stop = min(start + per_image, out_h * out_w)
            coord = coord_range(out_h, out_w, start, stop).unsqueeze(0).expand(b, -1, -1)
            feeds["coord"] = np.ascontiguousarray(coord.numpy())
            rgb = self.query.run(["rgb"], feeds)[0]
            out[:, :, start:stop] = torch.from_numpy(rgb).transpose(1, 2)
        return out.view(b, 3, out_h, out_w)
