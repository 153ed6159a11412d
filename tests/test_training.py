"""Training: every protocol's smoke config trains; resume after SIGKILL and reruns are exact;
DDP through torchrun keeps the ranks identical; training checkpoints hold no pickle."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from arasfsr.errors import InputError
from arasfsr.models import ARCHITECTURES, create_model
from arasfsr.registry import tier_sizes
from arasfsr.training import list_configs, load_config, train
from arasfsr.training.checkpoint_io import load_state, save_state
from arasfsr.training.config import model_spec
from arasfsr.training.data import StepBatches, list_images, subset
from arasfsr.training.module import SRTask

SRC = Path(__file__).resolve().parents[1] / "src"
# Short runs with checkpoints at steps 2, 4, 6, 8 (for the kill/resume test).
RESUME_SET = ["--set", "train.iterations=10", "--set", "train.val_every=2", "--set", "data.limit=6"]


@pytest.fixture(autouse=True)
def one_thread():
    # Two cores shared by many processes: one thread is much faster than two here.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    env.pop("LOCAL_WORLD_SIZE", None)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "arasfsr.cli", "train", *args]



def _smoke_configs() -> list[str]:
    # Every one of them: a config that fails to load must fail its test, not drop out.
    return [name for name in list_configs() if name.startswith("smoke/")]


@pytest.mark.parametrize("name", list_configs())
def test_every_shipped_config_loads_and_names_a_model(name):
    arch, _ = model_spec(load_config(name))
    assert arch in ARCHITECTURES


def test_every_protocol_has_a_config_per_tier():
    shipped = set(list_configs())
    for tier in ("smoke", "cpu", "paper"):
        for name in ("A-arasfsr", "A-liif", "A-lte", "A-diinn", "A-arasfsr-L", "A-arasfsr-G",
                     "A-arasfsr-S", "B-arasfsr", "B-liif", "B-sparnet", "C-arasfsr", "C-liif", "P-arasfsr",
                     "R-arasfsr"):
            assert f"{tier}/{name}" in shipped
    protocols = {load_config(n)["protocol"] for n in _smoke_configs()}
    assert protocols == {"A", "B", "C", "P", "R"}


@pytest.mark.parametrize("name", _smoke_configs())
def test_smoke_config_trains_and_exports(name, face_data, tmp_path):
    path = train(name, out=tmp_path / "run", data_root=face_data, command="test")
    card = json.loads(path.with_suffix(".json").read_text())
    cfg = load_config(name)
    assert card["iterations"] == cfg["train"]["iterations"]
    assert card["protocol"] == cfg["protocol"] and card["tier"] == "smoke"
    assert card["val_psnr_final"] > 10 and card["val_psnr_best"] >= card["val_psnr_final"]
    from arasfsr.checkpoint import load_checkpoint

    model = load_checkpoint(path)
    assert model.render(torch.rand(1, 3, 12, 12), (20, 20)).shape == (1, 3, 20, 20)


def test_batches_are_a_pure_function_of_seed_and_step(face_data):
    cfg = load_config("smoke/P-arasfsr")
    files = subset(list_images(face_data / "utkface" / "train"), 6)
    a = StepBatches(files, cfg["data"], 4, seed=3)
    b = StepBatches(files, cfg["data"], 4, seed=3)
    for step in (5, 0, 5):
        x, y = a[step], b[step]
        assert all(torch.equal(x[k], y[k]) for k in x)
    # DDP ranks split exactly the single-process global batch.
    halves = [StepBatches(files, cfg["data"], 4, seed=3, rank=r, world_size=2)[7] for r in (0, 1)]
    whole = a[7]
    assert all(torch.equal(torch.cat([h[k] for h in halves]), whole[k]) for k in whole)
    # One LR size per batch; P draws different sizes over steps.
    sizes = {a[s]["lr"].shape[-1] for s in range(6)}
    assert len(sizes) > 1 and all(12 <= s <= 96 for s in sizes)


def test_training_state_round_trips_without_pickle(tmp_path):
    state = {"a": torch.arange(3), "opt": {0: {"step": torch.tensor(2.0)}}, "betas": (0.9, 0.99),
             "milestones": Counter({5: 1}), "inf": float("inf"), "none": None, "n": [1, "x"]}
    save_state(state, tmp_path / "s.safetensors")
    back = load_state(tmp_path / "s.safetensors")
    assert back["milestones"] == Counter({5: 1}) and back["milestones"][7] == 0
    assert back["betas"] == (0.9, 0.99) and torch.equal(back["opt"][0]["step"], torch.tensor(2.0))
    assert back["inf"] == float("inf") and back["n"] == [1, "x"] and back["none"] is None
    with open(tmp_path / "s.safetensors", "rb") as f:
        assert f.read(1) != b"\x80"  # not a pickle


def test_bad_requests_fail_clearly(face_data, tmp_path):
    with pytest.raises(InputError, match="nothing to train"):
        train("smoke/A-arasfsr", out=tmp_path, data_root=face_data, overrides=["model=bicubic"])
    with pytest.raises(InputError, match="no such config"):
        load_config("smoke/Z-nothing")
    with pytest.raises(InputError, match="unknown key"):
        load_config("smoke/A-arasfsr", ["train.iterationz=3"])
    with pytest.raises(InputError, match="train.query"):
        load_config("smoke/A-arasfsr", ["train.query=loop"])
    with pytest.raises(InputError, match="no such data folder"):
        train("smoke/A-arasfsr", out=tmp_path / "r", data_root=tmp_path / "missing")
    r = subprocess.run(_cli("smoke/A-arasfsr", "--resume", str(tmp_path / "nope.safetensors")),
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no such training checkpoint" in r.stderr


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.mark.parametrize("name, pipeline, every", [("smoke/A-arasfsr", "workers", "steps"),
                                                   ("smoke/P-arasfsr", "device", "steps"),
                                                   ("smoke/P-arasfsr", "device", "seconds")])
def test_kill_and_resume_matches_an_uninterrupted_run(face_data, tmp_path, name, pipeline, every):
    # every "seconds": checkpoints by training time (a background run's), at whatever step they fall
    resume_set = [*RESUME_SET, "--set", f"data.pipeline={pipeline}"]
    if every == "seconds":
        resume_set += ["--set", "train.val_every=10", "--set", "train.checkpoint_every_s=0.01"]
    common = [name, "--data-root", str(face_data), *resume_set]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*common, "--out", str(killed)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(ckpts.glob("step*.safetensors"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "model.safetensors").exists()
    # The run folder refuses a fresh start over its checkpoints...
    with pytest.raises(InputError, match="--resume"):
        train(name, out=killed, data_root=face_data)
    # ...and resumes from its last checkpoint.
    r = subprocess.run(_cli(*common, "--resume", str(killed)), env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    # The uninterrupted run, in this process (also checks that two runs agree).
    overrides = [v for v in resume_set if v != "--set"]
    ref = train(name, out=tmp_path / "ref", data_root=face_data, overrides=overrides)
    a, b = _weights(killed), _weights(ref.parent)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6, rtol=0), k
    card = json.loads((killed / "model.json").read_text())
    assert card["iterations"] == 10 and "--resume" not in card["command"]
    assert card["pipeline"] == pipeline and card["weights"].startswith("EMA")  # the EMA resumed too


@pytest.mark.parametrize("pipeline", ["workers", "device"])
def test_flat_weight_changes_what_a_realistic_run_learns(face_data, tmp_path, pipeline):
    """train.flat_weight reaches the loss in both data paths (same seed, other weights);
    a negative one is refused."""
    sets = ["train.iterations=2", "train.val_every=2", f"data.pipeline={pipeline}"]
    runs = [train("smoke/R-arasfsr", out=tmp_path / f"r{w}", data_root=face_data,
                  overrides=sets + [f"train.flat_weight={w}"]) for w in (0, 3)]
    plain, flat = (load_file(str(p)) for p in runs)
    assert not all(torch.equal(plain[k], flat[k]) for k in plain)
    with pytest.raises(InputError, match="flat_weight"):
        load_config("smoke/R-arasfsr", ["train.flat_weight=-1"])


@pytest.mark.parametrize("pipeline", ["workers", "device"])
def test_same_seed_same_weights_other_seed_differs(face_data, tmp_path, pipeline):
    sets = ["train.iterations=2", "train.val_every=2", f"data.pipeline={pipeline}"]
    runs = [train("smoke/C-liif", out=tmp_path / f"r{i}", data_root=face_data, overrides=sets + [f"train.seed={s}"])
            for i, s in enumerate((1, 1, 2))]
    w = [load_file(str(p)) for p in runs]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])
    assert not all(torch.equal(w[0][k], w[2][k]) for k in w[0])


def test_torchrun_ddp_two_ranks_agree(face_data, tmp_path):
    out = tmp_path / "ddp"
    with socket.socket() as sock:  # a free port: a fixed one failed the test once in a full run
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "arasfsr.cli", "train", "smoke/A-arasfsr", "--data-root", str(face_data), "--out", str(out),
           "--accelerator", "cpu", "--set", "train.iterations=3", "--set", "train.val_every=3"]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    card = json.loads((out / "model.json").read_text())
    assert card["world_size"] == 2 and card["ddp_ranks_identical"] is True
    assert card["command"].startswith("torchrun --nproc_per_node=2")


def test_init_fine_tunes_from_an_exported_model(face_data, tmp_path):
    from arasfsr.checkpoint import load_checkpoint, read_card

    base = train("smoke/C-liif", out=tmp_path / "base", data_root=face_data, command="base")
    tuned = train("smoke/C-liif", out=tmp_path / "tuned", data_root=face_data, init=base,
                  overrides=["train.iterations=2"], command="tuned")
    card = read_card(tuned)
    assert card["init"]["weights"] == str(base) and card["iterations_total"] == card["iterations"] + 4
    a, b = load_checkpoint(base).state_dict(), load_checkpoint(tuned).state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # it trained on from there
    with pytest.raises(InputError, match="differs"):
        train("smoke/C-arasfsr", out=tmp_path / "bad", data_root=face_data, init=base)


def test_profile_and_time_budget_and_totals(face_data, tmp_path):
    """The step profile is written and carded; a time budget stops the run and records its
    planned steps; --init accumulates the totals of the weights it starts from."""
    from arasfsr.checkpoint import read_card

    base = train("smoke/A-liif", out=tmp_path / "base", data_root=face_data,
                 overrides=["data.pipeline=device", "train.profile=true", "train.iterations=10",
                            "train.val_every=10"])
    card = read_card(base)
    prof = json.loads((base.parent / "profile.json").read_text())
    assert prof["steps"] == 8 and set(prof["seconds"]) == {"data", "forward", "backward", "optimizer"}
    assert card["profile"]["samples_per_s"] > 0 and "device_prep_ms_per_step" in card["profile"]
    assert card["totals"] == {"iterations": 10, "samples": 20, "train_seconds": card["totals"]["train_seconds"]}
    tuned = train("smoke/A-liif", out=tmp_path / "tuned", data_root=face_data, init=base,
                  overrides=["train.iterations=100000", "train.time_budget_s=3", "train.val_every=100000"])
    card2 = read_card(tuned)
    assert card2["iterations"] < 100000 and card2["time_budget_s"] == 3
    assert card2["totals"]["iterations"] == 10 + card2["iterations"]
    assert card2["totals"]["samples"] == 20 + 2 * card2["iterations"]


def test_speed_switches_train(face_data, tmp_path):
    """Fused Adam and channels-last convolutions (GPU switches) run on the CPU too."""
    sets = ["train.iterations=2", "train.val_every=2", "data.pipeline=device", "train.fused_adam=true",
            "train.channels_last=true"]
    path = train("smoke/A-arasfsr", out=tmp_path / "fast", data_root=face_data, overrides=sets)
    assert json.loads(path.with_suffix(".json").read_text())["val_psnr_final"] > 10


def test_steps_read_no_logged_value_back_to_the_host(face_data, tmp_path, monkeypatch):
    """On a GPU reading a tensor's value waits for the device, and a wait every step keeps
    the host from queueing the next step while the GPU works: the logged values are read
    only when the progress bar refreshes (every log_every steps), and it still shows the loss."""
    import traceback

    from arasfsr.training.run import StepProgressBar

    reads: list[int] = []
    item = torch.Tensor.item

    def counted_item(self):
        if "lightning" in traceback.extract_stack(limit=2)[0].filename:  # Lightning reads a value
            reads.append(1)
        return item(self)

    monkeypatch.setattr(torch.Tensor, "item", counted_item)
    shown: list[dict] = []
    get_metrics = StepProgressBar.get_metrics

    def recorded(self, trainer, module):
        shown.append(get_metrics(self, trainer, module))
        return shown[-1]

    monkeypatch.setattr(StepProgressBar, "get_metrics", recorded)
    train("smoke/A-arasfsr", out=tmp_path / "run", data_root=face_data,
          overrides=["train.iterations=48", "train.log_every=24", "train.val_every=100", "data.pipeline=device"])
    # a few per log line (the CSV logger's values) and at validation; one per step was 63
    assert len(reads) < 48 // 4, f"{len(reads)} host reads of logged values in 48 steps"
    assert any("loss" in m for m in shown)


def test_the_sync_probe_counts_the_warnings_of_cuda_sync_debug_mode():
    """What the profile reports as host_syncs on CUDA (PyTorch warns at each synchronising
    call in "warn" mode); here the warnings are raised by hand."""
    import warnings

    from arasfsr.training.timing import SyncProbe

    modes: list[str] = []
    probe = SyncProbe(set_mode=modes.append)
    probe.start()
    for _ in range(3):
        warnings.warn("called a synchronizing CUDA operation")
    warnings.warn("something else")
    result = probe.stop(steps=2)
    assert modes == ["warn", "default"] and result["per_step"] == 1.5
    assert list(result["where"].values()) == [3] and "test_training.py" in next(iter(result["where"]))
    with warnings.catch_warnings(record=True) as after:
        warnings.simplefilter("always")
        warnings.warn("called a synchronizing CUDA operation")
    assert len(after) == 1  # the probe gave the warnings back


def test_time_budget_fits_again_when_the_first_steps_were_slow(monkeypatch):
    """A run whose first measured steps are slow (new shapes, warming loaders) is fitted again
    from later windows, so it uses its budget instead of stopping early (the H100 session's
    protocol P run trained 142 s of a 222-s slice with one early fit)."""
    budget, trainer, module, clock = _run_on_a_fake_clock(
        monkeypatch, lambda step: 0.1 if step <= 100 else 0.05)  # 10 it/s, then 20 it/s
    epoch_loop = trainer.fit_loop.epoch_loop
    first_fit = budget.fits[0][1]
    assert first_fit < 1100  # the slow window alone: ~10 it/s over the budget
    assert len(budget.fits) >= 3 and budget.fitted == module.total_iterations == epoch_loop.max_steps
    assert trainer.global_step > 1800 and clock[0] <= 100.0  # ~all of the budget at 20 it/s, not past it


def _run_on_a_fake_clock(monkeypatch, seconds_per_step, start_step=0, wall_before=0.0):
    """A 100-s TimeBudget driven step by step on a fake clock until it stops the run."""
    from types import SimpleNamespace

    from arasfsr.training import timing

    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    budget = timing.TimeBudget(100.0, warm=20, measure=50)
    epoch_loop = SimpleNamespace(max_steps=10**8)
    trainer = SimpleNamespace(global_step=start_step, max_steps=10**8, should_stop=False,
                              fit_loop=SimpleNamespace(epoch_loop=epoch_loop))
    module = SimpleNamespace(device=torch.device("cpu"), total_iterations=10**8, wall_before=wall_before)
    budget.on_train_start(trainer, module)
    while not trainer.should_stop and trainer.global_step < epoch_loop.max_steps:
        trainer.global_step += 1
        clock[0] += seconds_per_step(trainer.global_step)
        budget.on_train_batch_end(trainer, module, None, None, 0)
    return budget, trainer, module, clock


@pytest.mark.parametrize("arch, config", [
    ("arasfsr", {}), ("arasfsr", {"frequency": False}), ("arasfsr", {"modulation": False}),
    ("arasfsr", {"skip": False}), ("arasfsr", {"variant": "authors"}), ("liif", {}), ("lte", {}), ("diinn", {})])
def test_projected_query_trains_as_the_gathered_one(arch, config):
    """train.query=projected (first layer per LR position, then gathered) is the same loss and
    the same gradients as gathering each query's unfolded code; under bf16 autocast it runs too."""
    torch.manual_seed(0)
    model = create_model(arch, **{**tier_sizes(arch, "smoke"), **config})
    b, q = 3, 50
    batch = {"lr": torch.rand(b, 3, 12, 10), "coord": torch.rand(b, q, 2) * 2 - 1,
             "ratio": torch.tensor([[0.5, 0.4], [0.25, 0.25], [0.7, 0.9]]), "gt": torch.rand(b, q, 3)}

    def step(query: str, autocast: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        task = SRTask(model, load_config("smoke/A-arasfsr", [f"train.query={query}"])["train"])
        model.zero_grad()
        torch.manual_seed(1)  # the same frequency latent draw
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss, kl = task.pixels_loss(batch)
        (loss if kl is None else loss + kl).backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    (loss_g, grads_g), (loss_p, grads_p) = step("gathered"), step("projected")
    assert torch.allclose(loss_g, loss_p, rtol=1e-5, atol=0)
    assert grads_g.keys() == grads_p.keys() and len(grads_g) > 0
    for name in grads_g:
        assert (grads_g[name] - grads_p[name]).norm() <= 1e-4 * grads_g[name].norm() + 1e-9, name
    (loss_bg, _), (loss_bp, grads_bp) = step("gathered", True), step("projected", True)
    assert abs(loss_bp - loss_bg) < 0.05 * loss_bg and all(g.isfinite().all() for g in grads_bp.values())


def test_time_budget_counts_the_time_before_a_resume(monkeypatch):
    """A run resumed at step 500 after 60 s of its 100-s budget trains about 40 s more, fitted
    from its own steps (a background run killed and restarted keeps its end time)."""
    budget, trainer, _, clock = _run_on_a_fake_clock(monkeypatch, lambda step: 0.1, start_step=500,
                                                     wall_before=60.0)
    assert budget.fits and budget.fits[0][0] == 500 + 20 + 50  # fitted from this run's steps
    assert 380 <= trainer.global_step - 500 <= 400 and clock[0] <= 40.0 + 1e-9


def test_a_stop_file_ends_the_run_after_its_step_and_exports(face_data, tmp_path):
    """touch RUN/STOP: the run stops after the current step, validates and exports."""
    from arasfsr.checkpoint import read_card
    from arasfsr.training.run import STOP_FILE

    out = tmp_path / "run"
    out.mkdir()
    (out / STOP_FILE).touch()
    path = train("smoke/C-liif", out=out, data_root=face_data,
                 overrides=["train.iterations=1000", "train.val_every=1000"])
    card = read_card(path)
    assert card["iterations"] == 1 and card["val_psnr_final"] is not None


def test_run_card_records_the_run_and_accumulates_from_an_old_card():
    """The card is a pure function of the config and the run's facts: a realistic run carries
    its degradation settings, and weights from before totals existed count their iterations."""
    from arasfsr.training import load_config
    from arasfsr.training.run import RunFacts, run_card

    facts = RunFacts(arch="arasfsr", parameters=7, root=Path("/data"), train_images=3, val_images=2,
                     iterations=5, wall_time_s=12.34, this_session_s=6.0, machine="CPU", world_size=1,
                     ranks_identical=True, precision="bf16-mixed", val_psnr_best=20.0, val_psnr_final=19.5,
                     command="arasfsr train", ema=True, init="old.safetensors",
                     init_card={"iterations": 40, "train": {"batch_size": 4}, "wall_time_s": 100.0})
    cfg = load_config("paper/R-arasfsr")
    card = run_card(cfg, facts)
    assert card["data"]["realistic"] == cfg["data"]["realistic"] and card["data"]["train"] == "/data/" + cfg["data"]["train"]
    assert card["totals"] == {"iterations": 45, "samples": 160 + 5 * cfg["train"]["batch_size"], "train_seconds": 112.3}
    assert card["iterations_total"] == 45 and card["wall_time_s"] == 12.3 and card["weights"].startswith("EMA")
    assert "realistic" not in run_card(load_config("paper/P-arasfsr"), facts)["data"]
    assert "time_budget_s" not in card and card["init"]["weights"] == "old.safetensors"
