"""One LightningModule for every model: Charbonnier loss on queried pixels, Adam with a
step decay, validation PSNR on whole faces.

Implicit models are queried at the sampled HR pixels; the others (bicubic, SPARNet)
go through :meth:`SuperResolver.forward`, which renders and reads the same pixels.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ..models.core import ImplicitSR, SuperResolver, denormalise, normalise
from ..models.frequency import kl_divergence


def charbonnier(pred: Tensor, target: Tensor, delta: float) -> Tensor:
    """Paper Eq. 13 on the models' internal [-1, 1] scale (as the authors' code)."""
    diff = (pred.float() - target.float()) * 2.0
    return torch.sqrt(diff * diff + delta * delta).mean()


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image RGB PSNR (dB) of images in [0, 1]: a training monitor only."""
    mse = (pred.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def step_seed(seed: int, step: int, rank: int) -> int:
    """The model's own randomness (the frequency latent) at one step: a pure function."""
    return int(np.random.SeedSequence([seed, step, rank, 5]).generate_state(1)[0])


class SRTask(L.LightningModule):
    def __init__(self, model: SuperResolver, train_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.cfg = train_cfg
        self.best_psnr: float | None = None
        self.last_psnr: float | None = None
        self.wall_before = 0.0  # seconds spent in earlier (killed) runs
        self._t0 = time.time()
        self._val: list[Tensor] = []
        self._tick: float | None = None

    def wall_time(self) -> float:
        return self.wall_before + time.time() - self._t0

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
        if isinstance(self.model, ImplicitSR):
            state = self.model.encode(normalise(batch["lr"]))
            pred = denormalise(self.model.query(state, batch["coord"], batch["ratio"]))
            kl = kl_divergence(state.mu.float(), state.logvar.float()) if state.mu is not None else None
            return pred, kl
        return self.model(batch["lr"], batch["coord"], batch["ratio"]), None

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pred, kl = self.predict_pixels(batch)
        loss = charbonnier(pred, batch["gt"], self.cfg["charbonnier_delta"])
        if self.cfg["kl_weight"] and kl is not None:
            loss = loss + self.cfg["kl_weight"] * kl
            self.log("kl", kl, on_step=True)
        self.log("loss", loss, prog_bar=True, on_step=True)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        hr = batch["hr"]
        out = self.model.render(batch["lr"], tuple(hr.shape[-2:]))
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
        opt = torch.optim.Adam(self.model.parameters(), lr=self.cfg["lr"])
        milestone = max(1, int(self.cfg["iterations"] * self.cfg["lr_decay_at"]))
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [milestone], gamma=self.cfg["lr_gamma"])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["arasfsr"] = {"best_psnr": self.best_psnr, "last_psnr": self.last_psnr,
                                 "wall_time": self.wall_time()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        extra = checkpoint.get("arasfsr", {})
        self.best_psnr = extra.get("best_psnr")
        self.last_psnr = extra.get("last_psnr")
        self.wall_before = float(extra.get("wall_time", 0.0))
        self._t0 = time.time()
