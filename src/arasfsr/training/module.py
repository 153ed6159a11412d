"""One LightningModule for every model: a pixel loss on queried pixels (Charbonnier, or a
recipe's L1), Adam with a warm-up and a step or cosine decay, an EMA of the weights,
validation PSNR on whole faces (of the EMA weights when there is one).

Implicit models are queried at the sampled HR pixels (``train.query``: through the
first layer projected once per LR position, or by gathering each query's unfolded code);
the others (bicubic, SPARNet) go through :meth:`SuperResolver.forward`, which renders and
reads the same pixels. ``train.compile`` runs the forward pass and the loss through
``torch.compile``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.core import ImplicitSR, SuperResolver, denormalise, normalise
from ..models.frequency import kl_divergence
from ..uncertainty import grey_sobel_magnitude
from .ema import make_ema, update_ema


def pixel_loss(pred: Tensor, target: Tensor, kind: str = "charbonnier", delta: float = 1e-3,
               mask: Tensor | None = None, weight: Tensor | None = None) -> Tensor:
    """Charbonnier (paper Eq. 13), L1 or MSE (what PSNR measures: the per-pixel mean,
    where L1 gives the median), on the models' internal [-1, 1] scale (as the authors'
    code); ``mask`` (B,Q) keeps only the real queries of padded batches, ``weight`` (B,Q)
    makes it a weighted mean over the queries."""
    diff = (pred.float() - target.float()) * 2.0
    if kind == "charbonnier":
        err = torch.sqrt(diff * diff + delta * delta)
    else:
        err = diff * diff if kind == "mse" else diff.abs()
    if mask is None and weight is None:
        return err.mean()
    keep = torch.ones(err.shape[:-1], dtype=err.dtype, device=err.device) if mask is None else mask.to(err.dtype)
    if weight is not None:
        keep = keep * weight.to(err.dtype)
    keep = keep.unsqueeze(-1)
    return (err * keep).sum() / (keep.sum() * err.shape[-1]).clamp_min(1e-12)


def flat_query_weights(lr: Tensor, coord: Tensor, extra: float, mask: Tensor | None = None) -> Tensor:
    """(B,Q) weights: 1 + ``extra`` at the queries where the input shows nothing, else 1.

    Flat is where the gradient of the lightly smoothed input's luma, read at the query, is
    at most the face's median over its queries: the region where ``realworld/``'s blotch
    score looks (docs/degradations.md), so that what a model invents there costs more."""
    grey = (lr.float() * lr.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    smooth = torch.tensor([1.0, 2.0, 1.0], device=lr.device) / 4
    grey = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), (smooth[:, None] * smooth[None, :]).view(1, 1, 3, 3))
    grad = grey_sobel_magnitude(grey)
    # coord is (y, x) at pixel centres in [-1, 1]; grid_sample wants (x, y).
    at = F.grid_sample(grad, coord.float().flip(-1).unsqueeze(1), mode="bilinear", padding_mode="border",
                       align_corners=False).view(coord.shape[0], -1)
    counted = at if mask is None else torch.where(mask, at, torch.full_like(at, float("nan")))
    median = counted.nanmedian(dim=1, keepdim=True).values
    return 1.0 + extra * (at <= median).to(at.dtype)


def lr_factor(step: int, total: int, cfg: dict[str, Any]) -> float:
    """The learning rate at optimiser step ``step`` of ``total``, as a fraction of ``lr``:
    a linear warm-up over ``warmup`` steps, then ``step`` (x ``lr_gamma`` from
    ``lr_decay_at`` of the run on) or ``cosine`` (from there down to ``lr_gamma``)."""
    warmup = min(int(cfg.get("warmup") or 0), total // 4)  # a short run still gets its decay
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    start = max(1, int(total * cfg["lr_decay_at"]))
    if cfg.get("lr_schedule", "step") == "cosine":
        start = max(start, warmup)
        if step >= start:
            progress = min(1.0, (step - start) / max(1, total - start))
            gamma = cfg["lr_gamma"]
            factor *= gamma + (1 - gamma) * 0.5 * (1 + math.cos(math.pi * progress))
    elif step >= start:
        factor *= cfg["lr_gamma"]
    return factor


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image RGB PSNR (dB) of images in [0, 1]: a training monitor only."""
    mse = (pred.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ambient_dtype(device: torch.device) -> torch.dtype:
    """The precision the trainer's autocast gives matrix products (fp32 without autocast)."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return torch.float32


def step_seed(seed: int, step: int, rank: int) -> int:
    """The model's own randomness (the frequency latent) at one step: a pure function."""
    return int(np.random.SeedSequence([seed, step, rank, 5]).generate_state(1)[0])


class SRTask(L.LightningModule):
    def __init__(self, model: SuperResolver, train_cfg: dict[str, Any], varying_shapes: bool = False) -> None:
        super().__init__()
        self.model = model
        self.cfg = train_cfg
        self.varying_shapes = varying_shapes  # LR sizes change per batch: compile for dynamic shapes
        # The exported weights: an EMA of the trained ones (a sub-module, so checkpoints keep it).
        self.ema = make_ema(model) if train_cfg.get("ema_decay") else None
        self.total_iterations = int(train_cfg["iterations"])  # a time budget may lower it
        self._loss_fn = self.pixels_loss
        self.best_psnr: float | None = None
        self.last_psnr: float | None = None
        self.wall_before = 0.0  # seconds spent in earlier (killed) runs
        self._t0 = time.time()
        self._val: list[Tensor] = []
        self._tick: float | None = None

    @property
    def export_model(self) -> SuperResolver:
        """What validation scores and training exports: the EMA when there is one."""
        return self.ema if self.ema is not None else self.model

    def wall_time(self) -> float:
        return self.wall_before + time.time() - self._t0

    def on_fit_start(self) -> None:
        if self.cfg.get("channels_last"):
            self.model.to(memory_format=torch.channels_last)
        mode = self.cfg.get("compile")
        if mode:
            self._loss_fn = torch.compile(self.pixels_loss, mode=None if mode is True else mode,
                                          dynamic=True if self.varying_shapes else None)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        torch.manual_seed(step_seed(self.cfg["seed"], self.global_step, self.global_rank))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Training speed over the last `log_every` steps (validation time left out).
        every = max(1, int(self.cfg["log_every"]))
        if self.global_step % every == 0:
            now = time.perf_counter()
            if self._tick is not None:
                self.log("steps_per_s", every / (now - self._tick), on_step=True)
            self._tick = now

    def on_validation_start(self) -> None:
        self._tick = None

    def predict_pixels(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        model = self.model
        if isinstance(model, ImplicitSR):
            state = model.encode(normalise(batch["lr"]))
            if self.cfg.get("query", "projected") == "projected" and model.has_fast_path:
                # The decoder's first layer applied once per LR position and its rows gathered
                # (the inference fast path, differentiated): the same maths as gathering each
                # query's unfolded code, with fewer products and a narrower gather.
                dtype = ambient_dtype(batch["lr"].device)
                model.project(state, dtype)
                pred = model.query_fast(state, batch["coord"], batch["ratio"], dtype)
            else:
                pred = model.query(state, batch["coord"], batch["ratio"])
            pred = denormalise(pred)
            kl = kl_divergence(state.mu.float(), state.logvar.float()) if state.mu is not None else None
            return pred, kl
        return self.model(batch["lr"], batch["coord"], batch["ratio"]), None

    def pixels_loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """(pixel loss, KL term or None) of one batch: what ``train.compile`` compiles."""
        if self.cfg.get("channels_last"):
            batch = {**batch, "lr": batch["lr"].contiguous(memory_format=torch.channels_last)}
        pred, kl = self.predict_pixels(batch)
        extra = self.cfg.get("flat_weight") or 0.0
        weight = flat_query_weights(batch["lr"], batch["coord"], extra, batch.get("mask")) if extra else None
        loss = pixel_loss(pred, batch["gt"], self.cfg.get("loss", "charbonnier"), self.cfg["charbonnier_delta"],
                          batch.get("mask"), weight)
        return loss, kl

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, kl = self._loss_fn(batch)
        if self.cfg["kl_weight"] and kl is not None:
            loss = loss + self.cfg["kl_weight"] * kl
            self.log("kl", kl, on_step=True)
        self.log("loss", loss, on_step=True)  # shown by StepProgressBar without a per-step sync
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        hr = batch["hr"]
        out = self.export_model.render(batch["lr"], tuple(hr.shape[-2:]))
        self._val.append(psnr(out, hr))

    def on_validation_epoch_end(self) -> None:
        local = torch.cat(self._val) if self._val else torch.zeros(0, device=self.device)
        total = torch.stack([local.double().sum(), torch.tensor(float(local.numel()), device=self.device,
                                                                 dtype=torch.float64)])
        total = self.trainer.strategy.reduce(total, reduce_op="sum")
        value = float(total[0] / total[1].clamp_min(1))
        self.last_psnr = value
        if not self.trainer.sanity_checking:
            self.best_psnr = value if self.best_psnr is None else max(self.best_psnr, value)
        self.log("val_psnr", value, prog_bar=True, sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self) -> Any:
        betas = tuple(self.cfg.get("betas") or (0.9, 0.999))
        fused = {"fused": True} if self.cfg.get("fused_adam") else {}
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg["lr"], betas=betas, **fused)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(t, self.total_iterations, self.cfg))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.ema is not None:
            update_ema(self.ema, self.model, self.cfg["ema_decay"], self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["arasfsr"] = {"best_psnr": self.best_psnr, "last_psnr": self.last_psnr,
                                 "wall_time": self.wall_time(), "total_iterations": self.total_iterations}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("arasfsr", {})
        self.best_psnr = extra.get("best_psnr")
        self.last_psnr = extra.get("last_psnr")
        self.wall_before = float(extra.get("wall_time", 0.0))
        self.total_iterations = int(extra.get("total_iterations", self.total_iterations))
        self._t0 = time.time()
