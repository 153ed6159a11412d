"""Where a training step's time goes (``train.profile``), and training to a wall-clock budget
(``train.time_budget_s``).

The profile splits each step into: data (from the end of the last step to the start of
this one: the loader, the copy to the device and, on the device path, the making of the
batch there, reported apart as ``device_prep``), forward (and the loss), backward, and the
optimiser (with the EMA update). It synchronises the device at every boundary, which costs
a little speed but makes the split true for asynchronous CUDA work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

PHASES = ("data", "forward", "backward", "optimizer")


def _sync(module: L.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


class StepProfile(Callback):
    """Seconds per phase over the steps after ``skip`` warm-up steps; written to ``path``."""

    def __init__(self, path: Path, batch_size: int, skip: int = 5, device_batches: Any = None) -> None:
        self.path, self.batch_size, self.skip = Path(path), batch_size, skip
        self._device_batches = device_batches  # () -> the device path's DeviceBatches, or None
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.steps = 0
        self._mark: float | None = None
        self._phase_start = 0.0
        self._prep_at_skip = 0.0

    @property
    def device_batches(self) -> Any:
        return self._device_batches() if self._device_batches is not None else None

    def _now(self, module: L.LightningModule) -> float:
        _sync(module)
        return time.perf_counter()

    def _counting(self, trainer: L.Trainer) -> bool:
        return trainer.global_step >= self.skip

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        now = self._now(module)
        if self._mark is not None and self._counting(trainer):
            self.totals["data"] += now - self._mark
        self._phase_start = now

    def on_before_backward(self, trainer: L.Trainer, module: L.LightningModule, loss: Any) -> None:
        now = self._now(module)
        if self._counting(trainer):
            self.totals["forward"] += now - self._phase_start
        self._phase_start = now

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        now = self._now(module)
        if self._counting(trainer):
            self.totals["backward"] += now - self._phase_start
        self._phase_start = now

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = self._now(module)
        if trainer.global_step - 1 >= self.skip:  # the step just taken counts
            self.totals["optimizer"] += now - self._phase_start
            self.steps += 1
        elif self.device_batches is not None:
            self._prep_at_skip = self.device_batches.prep_s
        self._mark = now

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._mark = None  # validation is not data wait

    def result(self) -> dict[str, Any]:
        total = sum(self.totals.values())
        out: dict[str, Any] = {"steps": self.steps, "batch_size": self.batch_size,
                               "seconds": {k: round(v, 4) for k, v in self.totals.items()}}
        if self.steps and total > 0:
            out["it_per_s"] = round(self.steps / total, 3)
            out["samples_per_s"] = round(self.steps * self.batch_size / total, 1)
            out["share"] = {k: round(v / total, 3) for k, v in self.totals.items()}
            out["ms_per_step"] = {k: round(1000 * v / self.steps, 2) for k, v in self.totals.items()}
        if self.device_batches is not None and self.steps:
            prep = self.device_batches.prep_s - self._prep_at_skip
            out["device_prep_ms_per_step"] = round(1000 * prep / self.steps, 2)
        return out

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.result(), indent=2) + "\n")


class TimeBudget(Callback):
    """Fit the run into ``budget_s`` seconds of training: after ``warm`` steps (compilation,
    caches) it times ``measure`` steps, then lowers the step count (and with it the LR
    schedule, which reads ``total_iterations``) to what fits; it stops at the budget in any case.
    """

    def __init__(self, budget_s: float, warm: int = 20, measure: int = 50, margin: float = 0.97) -> None:
        self.budget_s, self.warm, self.measure, self.margin = budget_s, warm, measure, margin
        self.t0 = 0.0
        self._warm_at: tuple[int, float] | None = None
        self.fitted: int | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self.fitted is None and step in (self.warm, self.warm + self.measure):
            now = self._now(module)
            if step == self.warm:
                self._warm_at = (step, now)
            elif self._warm_at is not None:
                rate = (step - self._warm_at[0]) / (now - self._warm_at[1])
                left = self.budget_s - (now - self.t0)
                total = min(trainer.max_steps, step + max(1, int(rate * left * self.margin)))
                self.fitted = total
                trainer.fit_loop.max_steps = total
                module.total_iterations = total
        if time.perf_counter() - self.t0 > self.budget_s:
            trainer.should_stop = True

    @staticmethod
    def _now(module: L.LightningModule) -> float:
        _sync(module)
        return time.perf_counter()
