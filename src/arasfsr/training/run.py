"""``arasfsr train``: build the model, data and Lightning trainer from a config; export.

Run layout under ``--out`` (default ``runs/<tier>/<name>``)::

    config.yaml               the resolved config
    checkpoints/*.safetensors training states (safetensors + JSON, never pickle)
    logs/version_N/           CSV metrics (and TensorBoard when it is installed)
    model.safetensors, .json  the exported model and its card
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from ..checkpoint import save_checkpoint
from ..data import resolve_data_root
from ..errors import InputError
from ..imageio import check_output_dir
from ..models import create_model
from ..runtime import keep_all_freed_memory, resolve_precision
from .checkpoint_io import SafetensorsCheckpointIO, check_state
from .config import MAX_WORKERS, PRECISIONS, load_config, model_spec
from .data import StepBatches, StepSampler, ValFaces, list_images, subset
from .device_data import DevicePipeline
from .module import SRTask
from .timing import StepProfile, StopRequest, TimeBudget

CKPT_SUFFIX = ".safetensors"
STOP_FILE = "STOP"  # touch RUN/STOP: the run ends after its current step, validates and exports


class FaceData(L.LightningDataModule):
    """Training batches keyed by step (from where training stands) and the val faces."""

    def __init__(self, cfg: dict[str, Any], train_files: list[Path], val_files: list[Path]) -> None:
        super().__init__()
        self.cfg, self.train_files, self.val_files = cfg, train_files, val_files
        # data.pipeline device: batches made on the training device (device_data.py).
        self.device = DevicePipeline(cfg, train_files) if cfg["data"]["pipeline"] == "device" else None

    def setup(self, stage: str) -> None:
        if self.device is not None:
            self.device.setup()  # decode the faces once, before the loader's workers start

    def _loader(self, dataset: Any, workers: int | None = None, **kw: Any) -> DataLoader:
        workers = int(self.cfg["data"]["num_workers"] or 0) if workers is None else workers
        return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0,
                          pin_memory=torch.cuda.is_available(), **kw)

    def train_dataloader(self) -> DataLoader:
        t = self.trainer
        # Called after a checkpoint is restored: global_step is where training resumes.
        ds = StepBatches(self.train_files, self.cfg["data"], self.cfg["train"]["batch_size"],
                         self.cfg["train"]["seed"], t.global_rank, t.world_size)
        if self.device is not None:
            return self._loader(self.device.dataset(ds), self.device.workers(), batch_size=None,
                                sampler=StepSampler(t.global_step))
        return self._loader(ds, batch_size=None, sampler=StepSampler(t.global_step))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.device is not None and "face" in batch:  # a training plan, now on the device
            return self.device.make(batch)
        return batch

    def val_dataloader(self) -> DataLoader:
        t = self.trainer
        ds = ValFaces(self.val_files, self.cfg["val"], t.global_rank, t.world_size)
        return self._loader(ds, batch_size=self.cfg["val"]["batch_size"], shuffle=False)


class StepProgressBar(TQDMProgressBar):
    """Steps out of ``iterations`` (the default bar counts an endless epoch)."""

    @property
    def total_train_batches(self) -> int:
        return self.trainer.max_steps

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description("train")

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Any]:
        # The loss is read here, when the bar refreshes, not logged with prog_bar=True:
        # Lightning turns progress-bar metrics into numbers every step, which waits for the
        # GPU and keeps the host from queueing the next step's kernels meanwhile.
        metrics = super().get_metrics(trainer, module)
        loss = trainer.callback_metrics.get("loss")
        if loss is not None:
            metrics["loss"] = f"{float(loss):.3g}"
        return metrics


def machine_name(accelerator: str) -> str:
    if accelerator == "cuda":
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'s' if threads != 1 else ''}"


def _launch_layout(devices: int | None) -> tuple[int, int]:
    """(devices per node, nodes); under torchrun they come from its environment."""
    if "LOCAL_WORLD_SIZE" in os.environ and "WORLD_SIZE" in os.environ:
        local = int(os.environ["LOCAL_WORLD_SIZE"])
        return local, max(1, int(os.environ["WORLD_SIZE"]) // local)
    return devices or 1, 1


def _ranks_agree(model: torch.nn.Module) -> bool:
    """True when every DDP rank holds bit-identical weights (min == max everywhere)."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().flatten().double() for p in model.parameters()])
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return bool(torch.equal(hi, lo))


def resolve_resume(resume: str | Path | None) -> Path | None:
    """The training checkpoint to resume (``resume`` or its run folder's last), checked readable."""
    if resume is None:
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoints" / f"last{CKPT_SUFFIX}"
    if not path.is_file():
        raise InputError(f"{path}: no such training checkpoint")
    check_state(path)  # before Lightning starts and writes anything
    return path


def _check_request(devices: int | None, accelerator: str, precision: str | None, num_workers: int | None) -> None:
    """Refuse the command-line settings no run could use, before anything is built or written."""
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"trainer precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if num_workers is not None and not (isinstance(num_workers, int) and 0 <= num_workers <= MAX_WORKERS):
        raise InputError(f"num_workers {num_workers!r}: give a whole number from 0 to {MAX_WORKERS}")
    if devices is None or "LOCAL_WORLD_SIZE" in os.environ:
        return
    # Lightning reads devices=0 as "no accelerator" and would train on the CPU instead.
    cuda = accelerator == "cuda" or (accelerator == "auto" and torch.cuda.is_available())
    have = torch.cuda.device_count() if cuda else os.cpu_count() or 1
    if not (isinstance(devices, int) and 1 <= devices <= have):
        raise InputError(f"devices {devices!r}: give a whole number from 1 to {have} "
                         f"(the {'CUDA devices' if cuda else 'CPU cores'} of this machine)")


def resolve_accelerator(accelerator: str, precision: str) -> tuple[str, str]:
    """``auto`` made concrete: CUDA where there is one; bf16-mixed where it is native."""
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise InputError("--accelerator cuda: no CUDA device is available")
    if precision == "auto":
        precision = "bf16-mixed" if resolve_precision("auto", accelerator) == "bf16" else "32-true"
    return accelerator, precision


def train(config: str | Path, *, out: str | Path | None = None, resume: str | Path | None = None,
          data_root: str | Path | None = None, overrides: list[str] | None = None,
          devices: int | None = None, accelerator: str = "auto", precision: str | None = None,
          num_workers: int | None = None, command: str | None = None,
          init: str | Path | None = None) -> Path:
    """Train the model a config describes; return the exported ``model.safetensors``.

    ``init`` starts from the weights of an exported model of the same architecture and
    config (fine-tuning) instead of a random initialisation.
    """
    _check_request(devices, accelerator, precision, num_workers)
    cfg = load_config(config, overrides)
    root = resolve_data_root(data_root if data_root is not None else cfg["data"]["root"])
    cfg["data"]["root"] = str(root)  # config.yaml records the folder used
    if num_workers is not None:
        cfg["data"]["num_workers"] = num_workers
    arch, model_args = model_spec(cfg)
    if arch == "bicubic":
        raise InputError("bicubic has no parameters: there is nothing to train")
    resume_path = resolve_resume(resume)
    if out is None:
        out = resume_path.parent.parent if resume_path else Path("runs") / str(cfg["tier"]) / cfg["name"]
    out = check_output_dir(out)
    ckpt_dir = out / "checkpoints"
    if resume_path is None and ckpt_dir.is_dir() and any(ckpt_dir.iterdir()):
        raise InputError(f"{out}: holds checkpoints of a run; pass --resume {out} or choose another --out")

    train_files = subset(list_images(root / cfg["data"]["train"]), cfg["data"]["limit"])
    val_files = list_images(root / cfg["data"]["val"])

    accelerator, precision = resolve_accelerator(accelerator, precision or cfg["train"]["precision"])
    if accelerator == "cpu":
        keep_all_freed_memory()  # a step's activations come back from the heap, not as fresh pages
    per_node, nodes = _launch_layout(devices)

    seed = cfg["train"]["seed"]
    torch.manual_seed(seed)
    model = create_model(arch, **model_args)
    init_card = _load_init(model, init) if init is not None else None
    if not any(p.requires_grad for p in model.parameters()):
        raise InputError(f"{arch} has no trainable parameters: there is nothing to train")
    task = SRTask(model, cfg["train"], varying_shapes=isinstance(cfg["data"]["lr_size"], list))
    data = FaceData(cfg, train_files, val_files)

    debris = RunDebris(out)
    trainer, budget, profile = build_trainer(cfg, out, data, accelerator, precision, per_node, nodes)
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*infinite.*")
        warnings.filterwarnings("ignore", message=".*module.* in eval mode.*")  # the EMA copy, on purpose
        started = time.time()
        try:
            trainer.fit(task, datamodule=data, ckpt_path=str(resume_path) if resume_path else None)
            if task.last_psnr is None or trainer.global_step % cfg["train"]["val_every"]:
                trainer.validate(task, datamodule=data, verbose=False)  # the final weights' PSNR
        except BaseException:
            if trainer.is_global_zero:
                debris.remove()
            raise
    agree = _ranks_agree(task.export_model) if trainer.world_size > 1 else True
    if not agree:
        raise RuntimeError("DDP ranks ended with different weights")
    path = out / "model.safetensors"
    if trainer.is_global_zero:
        card = run_card(cfg, RunFacts(
            arch=arch, parameters=sum(p.numel() for p in model.parameters()), root=root,
            train_images=len(train_files), val_images=min(cfg["val"]["count"], len(val_files)),
            iterations=trainer.global_step, wall_time_s=task.wall_time(), this_session_s=time.time() - started,
            machine=machine_name(accelerator), world_size=trainer.world_size, ranks_identical=agree,
            precision=precision, val_psnr_best=task.best_psnr, val_psnr_final=task.last_psnr,
            command=command, ema=task.ema is not None, iterations_planned=task.total_iterations,
            init=init, init_card=init_card), budget, profile)
        save_checkpoint(task.export_model, path, card=card)
    if trainer.world_size > 1 and torch.distributed.is_initialized():
        # Every rank waits for rank 0's export, then the group is taken down before the
        # process exits: a rank leaving with its gloo threads still up aborted ("terminate
        # called without an active exception") in about 1 of 4 two-rank CPU runs.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return path


def build_trainer(cfg: dict[str, Any], out: Path, data: FaceData, accelerator: str, precision: str,
                  per_node: int, nodes: int) -> tuple[L.Trainer, TimeBudget | None, StepProfile | None]:
    """The Lightning trainer of a run, with its checkpoints, progress bar, STOP file, optional
    time budget and step profile, and loggers; the budget and profile are returned for the card."""
    train_cfg = cfg["train"]
    # After each validation, or every checkpoint_every_s seconds of training.
    every_s = train_cfg.get("checkpoint_every_s")
    checkpoints = ModelCheckpoint(dirpath=out / "checkpoints", filename="step{step:07d}", auto_insert_metric_name=False,
                                  save_top_k=-1 if train_cfg.get("keep_checkpoints") == "all" else 1,
                                  save_last=True, save_on_train_epoch_end=False,
                                  train_time_interval=timedelta(seconds=float(every_s)) if every_s else None)
    checkpoints.FILE_EXTENSION = CKPT_SUFFIX
    # The bar reads the loss (a device sync) only when it refreshes: once per log interval.
    callbacks: list[Any] = [checkpoints, StepProgressBar(refresh_rate=max(1, int(train_cfg["log_every"]))),
                            StopRequest(out / STOP_FILE)]
    profile = None
    if train_cfg.get("profile"):
        profile = StepProfile(out / "profile.json", train_cfg["batch_size"],
                              skip=min(5, train_cfg["iterations"] // 5),
                              device_batches=lambda: data.device.batches if data.device else None)
        callbacks.append(profile)
    budget = TimeBudget(float(train_cfg["time_budget_s"])) if train_cfg.get("time_budget_s") else None
    if budget is not None:
        callbacks.append(budget)
    trainer = L.Trainer(
        accelerator=accelerator, devices=per_node, num_nodes=nodes,
        strategy="ddp" if per_node * nodes > 1 else "auto", precision=precision,
        max_steps=train_cfg["iterations"], max_epochs=-1,
        val_check_interval=train_cfg["val_every"], check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=train_cfg["log_every"],
        callbacks=callbacks, logger=_loggers(out),
        plugins=[SafetensorsCheckpointIO()], use_distributed_sampler=False,
        default_root_dir=out, enable_model_summary=False)
    return trainer, budget, profile


def _loggers(out: Path) -> list[Any]:
    """CSV metrics, and TensorBoard's beside them when it is installed."""
    loggers: list[Any] = [CSVLogger(out, name="logs")]
    try:
        from lightning.pytorch.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(out, name="logs", version=loggers[0].version))
    except ImportError:
        pass
    return loggers


@dataclass(frozen=True)
class RunFacts:
    """What a finished run knows beyond its config: the card's measured fields."""

    arch: str
    parameters: int
    root: Path
    train_images: int
    val_images: int
    iterations: int
    wall_time_s: float
    this_session_s: float
    machine: str
    world_size: int
    ranks_identical: bool
    precision: str
    val_psnr_best: float | None
    val_psnr_final: float | None
    command: str | None
    ema: bool
    iterations_planned: int | None = None
    init: str | Path | None = None
    init_card: dict[str, Any] | None = None


def run_card(cfg: dict[str, Any], facts: RunFacts, budget: TimeBudget | None = None,
             profile: StepProfile | None = None) -> dict[str, Any]:
    """The exported model's card: what was trained, on what, how long, and how well."""
    data = cfg["data"]
    card: dict[str, Any] = {
        "name": cfg["name"], "description": f"{cfg['model']} trained on protocol {cfg['protocol']} "
                                            f"({cfg['tier']} tier)",
        "model": cfg["model"], "arch": facts.arch, "protocol": cfg["protocol"], "tier": cfg["tier"],
        "parameters": facts.parameters,
        "data": {"train": str(facts.root / data["train"]), "train_images": facts.train_images,
                 "val": str(facts.root / data["val"]), "val_images": facts.val_images,
                 **{k: data[k] for k in ("lr_size", "hr_size", "scale", "max_hr", "degradation", "sample_q", "limit")},
                 **({"realistic": data["realistic"]} if data["degradation"] == "realistic" else {})},
        "validation": cfg["val"],
        "train": cfg["train"],
        "iterations": facts.iterations,
        "wall_time_s": round(facts.wall_time_s, 1),
        "this_session_s": round(facts.this_session_s, 1),
        "machine": facts.machine, "world_size": facts.world_size,
        "ddp_ranks_identical": facts.ranks_identical, "precision": facts.precision,
        "val_psnr_best": facts.val_psnr_best, "val_psnr_final": facts.val_psnr_final,
        "val_psnr_note": "RGB PSNR on whole validation faces, training monitor",
        "command": facts.command,
        "weights": "EMA of the trained weights" if facts.ema else "the trained weights",
        "pipeline": data["pipeline"],
    }
    if cfg.get("recipe"):
        card["recipe"] = cfg["recipe"]
    if budget is not None:
        card["time_budget_s"] = cfg["train"]["time_budget_s"]
        card["iterations_planned"] = facts.iterations_planned
        card["time_budget_fits"] = [{"at_step": a, "total": t} for a, t in budget.fits]
    if profile is not None:
        card["profile"] = profile.result()
    if facts.init_card is not None:
        card["init"] = {"weights": str(facts.init), "iterations": facts.init_card.get("iterations"),
                        "command": facts.init_card.get("command")}
    card["totals"] = accumulate_totals(facts.init_card, facts.iterations, cfg["train"]["batch_size"],
                                       facts.wall_time_s)
    card["iterations_total"] = card["totals"]["iterations"]
    return card


class RunDebris:
    """The files a run adds to its folder. If it fails before its first checkpoint (bad
    data, out of memory, Ctrl-C) they are removed, and the folders it made, so the folder
    is as it was; a run that saved a checkpoint keeps everything (``--resume`` goes on)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.created = [p for p in (out, *out.parents) if not p.exists()][::-1]
        self.before = self._files()

    def _files(self) -> set[Path]:
        return set(self.out.rglob("*")) if self.out.is_dir() else set()

    def remove(self) -> None:
        import shutil

        new = self._files() - self.before
        if any(p.parent.name == "checkpoints" and p.is_file() for p in new):
            return
        for path in sorted(new, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for folder in reversed(self.created):
            try:
                folder.rmdir()
            except OSError:
                pass


def accumulate_totals(init_card: dict[str, Any] | None, iterations: int, batch_size: int,
                      seconds: float) -> dict[str, Any]:
    """Training done on these weights so far, this run included: iterations, samples and
    training seconds (cards from before totals existed: from their iteration counts)."""
    prior = (init_card or {}).get("totals")
    if prior is None and init_card:
        its = int(init_card.get("iterations_total") or init_card.get("iterations") or 0)
        prior = {"iterations": its, "samples": its * int((init_card.get("train") or {}).get("batch_size") or 0),
                 "train_seconds": float(init_card.get("wall_time_s") or 0.0)}
    prior = prior or {"iterations": 0, "samples": 0, "train_seconds": 0.0}
    return {**prior, "iterations": int(prior["iterations"]) + iterations,
            "samples": int(prior["samples"]) + iterations * batch_size,
            "train_seconds": round(float(prior["train_seconds"]) + seconds, 1)}


def _load_init(model: torch.nn.Module, init: str | Path) -> dict[str, Any]:
    """Copy the weights of the exported model ``init`` into ``model``; return its card."""
    from ..checkpoint import load_checkpoint, read_card

    source = load_checkpoint(init)
    if type(source) is not type(model) or source.config != model.config:
        raise InputError(f"{init}: its architecture/config differs from the config being trained")
    model.load_state_dict(source.state_dict())
    return read_card(init)
