"""The thread policy holds whatever the import order, and precision "auto" follows the CPU
(bf16 where it multiplies bf16 in hardware) within the bound the bf16 path meets."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import arasfsr
from cli_helpers import ROOT


ORDER_PROBE = """
import sys
if sys.argv[1] == "torch-first":
    import torch, arasfsr
else:
    import arasfsr, torch
from arasfsr import runtime
print(arasfsr.OPENMP_WAIT_POLICY, runtime.ThreadPolicy().adaptive)
"""


@pytest.mark.parametrize("order, env, expected", [
    ("arasfsr-first", {}, "passive False"),
    ("torch-first", {}, "default True"),  # OpenMP spins: each render sizes its threads
    ("torch-first", {"OMP_WAIT_POLICY": "PASSIVE"}, "user False"),
    ("torch-first", {"OMP_NUM_THREADS": "2"}, "default False"),  # the user's count is kept
])
def test_the_thread_policy_holds_whatever_the_import_order(order, env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", ORDER_PROBE, order], capture_output=True, text=True, check=True,
                         env={**clean, **env, "PYTHONPATH": str(ROOT / "src")}).stdout.strip()
    if arasfsr.runtime.usable_cpus() == 1 and expected.endswith("True"):
        expected = "default False"  # one CPU: nothing to share
    assert out == expected


def test_spinning_threads_step_aside_for_busy_cores(monkeypatch):
    import torch

    from arasfsr import runtime

    monkeypatch.setattr(runtime, "openmp_spins", lambda: True)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # others: 1 CPU busy (one core taken), then 1.9 (two); 0.6 of a core leaves it free
    busy = iter([(0.0, 0.0, 0.0), (1.0, 1.0, 0.0), (1.0, 1.0, 0.0), (3.0, 8.8, 4.0)])
    monkeypatch.setattr(runtime, "_cpu_snapshot", lambda: next(busy))
    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        policy = runtime.ThreadPolicy()
        assert policy.adaptive and policy.free == 3
        with policy.rendering() as threads:
            assert threads == 3 == torch.get_num_threads()
        assert torch.get_num_threads() == 4 and policy.free == 2  # the user's count is back
        policy._update((0.0, 0.0, 0.0), (1.0, 0.6, 0.0))
        assert policy.free == 4
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("flags, expected", [({"avx512_bf16", "avx512f"}, "bf16"), ({"amx_bf16"}, "bf16"),
                                             ({"avx2", "avx512f"}, "fp32")])
def test_auto_precision_follows_the_cpu(monkeypatch, flags, expected):
    from arasfsr import runtime

    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(flags))
    assert runtime.resolve_precision("auto", "cpu") == expected


def test_bf16_on_this_cpu_stays_within_the_bound_on_a_real_face(shared_data):
    """The bound the bf16 path meets (tests/test_fast.py: above 50 dB of fp32), with the
    shipped default model on a real face, whatever this CPU computes bf16 with."""
    face = sorted((shared_data / "utkface" / "val").iterdir())[0]
    lr = Image.open(face).convert("RGB").resize((32, 32), Image.BICUBIC)
    fp32 = np.asarray(arasfsr.load_model(precision="fp32").upscale(lr, scale=4), np.float64) / 255
    bf16 = np.asarray(arasfsr.load_model(precision="bf16").upscale(lr, scale=4), np.float64) / 255
    assert 10 * np.log10(1 / ((fp32 - bf16) ** 2).mean()) > 50
