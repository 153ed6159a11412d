"""Where a training step's time goes (``train.profile``), and training to a wall-clock budget
(``train.time_budget_s``).

The profile splits each step into: data (from the end of the last step to the start of
this one: the loader, the copy to the device and, on the device path, the making of the
batch there, also reported alone as ``device_prep``), forward (and the loss), backward,
and the optimiser (with the EMA update). On CUDA the boundaries are CUDA events read once
at the end, so profiling adds no synchronisation: the split is the GPU's own timeline,
where "data" includes any time the GPU waited for the host. On a CPU they are clock reads.
On CUDA the profile also counts the host's waits for the device (``host_syncs``) over
``SYNC_PROBE_STEPS`` steps after the warm-up, with the lines that caused them: each wait
keeps the host from queueing the next kernels while the GPU works.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

PHASES = ("data", "forward", "backward", "optimizer")
SYNC_PROBE_STEPS = 10


class SyncProbe:
    """Counts synchronising CUDA calls between ``start`` and ``stop`` with PyTorch's sync
    debug mode, which warns at each one (``set_mode`` is ``torch.cuda.set_sync_debug_mode``)."""

    def __init__(self, set_mode: Any = None) -> None:
        self.set_mode = set_mode or torch.cuda.set_sync_debug_mode
        self._catch: Any = None
        self._caught: list[warnings.WarningMessage] = []

    def start(self) -> None:
        self._catch = warnings.catch_warnings(record=True)
        self._caught = self._catch.__enter__()
        warnings.simplefilter("always")
        self.set_mode("warn")

    def stop(self, steps: int) -> dict[str, Any]:
        self.set_mode("default")
        self._catch.__exit__(None, None, None)
        syncs = [w for w in self._caught if "synchroniz" in str(w.message)]
        where = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
        return {"steps": steps, "per_step": round(len(syncs) / max(1, steps), 2),
                "where": dict(where.most_common(8))}


def _sync(module: L.LightningModule) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


class Marks:
    """Time stamps that cost no device synchronisation: CUDA events, or the CPU clock."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, start: Any, end: Any) -> float:
        return start.elapsed_time(end) / 1000 if self.cuda else end - start


class StepProfile(Callback):
    """Seconds per phase over the steps after ``skip`` warm-up steps; written to ``path``."""

    def __init__(self, path: Path, batch_size: int, skip: int = 5, device_batches: Any = None) -> None:
        self.path, self.batch_size, self.skip = Path(path), batch_size, skip
        self._device_batches = device_batches  # () -> the device path's DeviceBatches, or None
        self.marks: Marks | None = None
        self.spans: list[tuple[str, Any, Any]] = []  # (phase, start mark, end mark), read at the end
        self.totals = dict.fromkeys(PHASES, 0.0)
        self.steps = 0
        self._last_end: Any = None
        self._start: Any = None
        self._prep_first = 0
        self._probe: SyncProbe | None = None
        self.host_syncs: dict[str, Any] | None = None

    @property
    def device_batches(self) -> Any:
        return self._device_batches() if self._device_batches is not None else None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.marks = Marks(module.device)

    def _span(self, trainer: L.Trainer, phase: str, start: Any, end: Any, step: int) -> None:
        if start is not None and step >= self.skip:
            self.spans.append((phase, start, end))

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if self.marks.cuda and trainer.global_step == self.skip and self.host_syncs is None:
            self._probe = SyncProbe()
            self._probe.start()
        now = self.marks.now()
        self._span(trainer, "data", self._last_end, now, trainer.global_step)
        self._start = now

    def on_before_backward(self, trainer: L.Trainer, module: L.LightningModule, loss: Any) -> None:
        now = self.marks.now()
        self._span(trainer, "forward", self._start, now, trainer.global_step)
        self._start = now

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule, optimizer: Any) -> None:
        now = self.marks.now()
        self._span(trainer, "backward", self._start, now, trainer.global_step)
        self._start = now

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = self.marks.now()
        step = trainer.global_step - 1  # the step just taken
        self._span(trainer, "optimizer", self._start, now, step)
        if step >= self.skip:
            self.steps += 1
        elif self.device_batches is not None:
            self._prep_first = len(self.device_batches.prep_marks)
        self._last_end = now
        if self._probe is not None and step + 1 >= self.skip + SYNC_PROBE_STEPS:
            self.host_syncs = self._probe.stop(SYNC_PROBE_STEPS)
            self._probe = None

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_end = None  # validation is not data wait

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._probe is not None:  # a run shorter than the probe's window
            self.host_syncs = self._probe.stop(max(1, trainer.global_step - self.skip))
            self._probe = None
        _sync(module)
        for phase, start, end in self.spans:
            self.totals[phase] += self.marks.seconds(start, end)
        self.spans = []
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.result(), indent=2) + "\n")

    def result(self) -> dict[str, Any]:
        total = sum(self.totals.values())
        out: dict[str, Any] = {"steps": self.steps, "batch_size": self.batch_size,
                               "seconds": {k: round(v, 4) for k, v in self.totals.items()}}
        if self.steps and total > 0:
            out["it_per_s"] = round(self.steps / total, 3)
            out["samples_per_s"] = round(self.steps * self.batch_size / total, 1)
            out["share"] = {k: round(v / total, 3) for k, v in self.totals.items()}
            out["ms_per_step"] = {k: round(1000 * v / self.steps, 2) for k, v in self.totals.items()}
        db = self.device_batches
        if db is not None and self.steps and self.marks is not None:
            marks = db.prep_marks[self._prep_first:]
            prep = sum(self.marks.seconds(a, b) for a, b in marks)
            out["device_prep_ms_per_step"] = round(1000 * prep / max(1, len(marks)), 2)
        if self.host_syncs is not None:
            out["host_syncs"] = self.host_syncs
        return out


class TimeBudget(Callback):
    """Fit the run into ``budget_s`` seconds of training: after ``warm`` steps (compilation,
    caches) it times ``measure`` steps and lowers the step count (and with it the LR schedule,
    which reads ``total_iterations``) to what fits. The first steps after the warm-up are often
    slower than the rest (new input shapes, loader workers filling up: a fit from them alone can
    leave a third of the budget unused), so it fits again after each doubling of the measured
    steps, from the latest window, while less than ``refit_until`` of the budget is spent. It
    stops at the budget in any case. A resumed run counts the wall time of the runs before it
    (``module.wall_before``) against the budget, and measures its own steps afresh.
    """

    def __init__(self, budget_s: float, warm: int = 20, measure: int = 50, margin: float = 0.97,
                 refit_until: float = 0.6) -> None:
        self.budget_s, self.warm, self.measure, self.margin = budget_s, warm, measure, margin
        self.refit_until = refit_until
        self.t0 = 0.0
        self._first = 0  # the step this run started from (0, or where it resumed)
        self._mark: tuple[int, float] | None = None  # (step, time) where the current window began
        self._next_fit = warm + measure
        self._cap = 0  # the configured iterations: never fitted above them
        self.fits: list[tuple[int, int]] = []  # (at step, fitted total): what the card can show

    @property
    def fitted(self) -> int | None:
        """The step count of the latest fit (None before the first)."""
        return self.fits[-1][1] if self.fits else None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.t0 = time.perf_counter() - float(getattr(module, "wall_before", 0.0))
        self._cap = trainer.max_steps
        self._first = trainer.global_step
        self._next_fit = self._first + self.warm + self.measure

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._first + self.warm:
            self._mark = (step, self._now(module))
        elif step == self._next_fit and self._mark is not None:
            now = self._now(module)
            rate = (step - self._mark[0]) / max(now - self._mark[1], 1e-9)
            left = self.budget_s - (now - self.t0)
            total = min(self._cap, step + max(1, int(rate * left * self.margin)))
            self.fits.append((step, total))
            trainer.fit_loop.epoch_loop.max_steps = total
            module.total_iterations = total
            if (now - self.t0) < self.refit_until * self.budget_s:
                self._mark = (step, now)
                self._next_fit = step + 2 * (step - self._first - self.warm)
        if time.perf_counter() - self.t0 > self.budget_s:
            trainer.should_stop = True

    @staticmethod
    def _now(module: L.LightningModule) -> float:
        _sync(module)
        return time.perf_counter()


class StopRequest(Callback):
    """End the run after the current step when the file ``path`` appears (``touch RUN/STOP``):
    it then validates and exports as if its budget had ended. A background run is finished
    this way, without losing the steps since its last checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.path.exists():
            trainer.should_stop = True
