"""Runtime defaults of inference: OpenMP wait policy, threads, tiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from arasfsr import runtime

PROBE = ("import os, json, arasfsr, torch; from arasfsr.api import load_model; "
         "load_model('bicubic'); "
         "print(json.dumps([os.environ.get('OMP_WAIT_POLICY'), torch.get_num_threads()]))")


def _probe(env: dict[str, str]) -> list:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_sets_passive_wait_policy_and_threads_to_usable_cpus():
    policy, threads = _probe({})
    assert policy == "PASSIVE"
    assert 1 <= threads <= runtime.usable_cpus()


def test_users_openmp_settings_win():
    assert _probe({"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}) == ["ACTIVE", 1]


def test_configure_threads_never_raises_the_users_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert runtime.configure_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_usable_cpus_reads_a_cgroup_quota(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(runtime, "_cgroup_cpu_quota", lambda: 1.5)
    assert runtime.usable_cpus() == 2
    monkeypatch.setattr(runtime, "_cgroup_cpu_quota", lambda: None)
    assert runtime.usable_cpus() == 8


FAULTS = """
import resource, torch, arasfsr
from arasfsr.runtime import keep_freed_memory
up = arasfsr.load_model("arasfsr-a")  # keeps freed memory unless the environment says otherwise
lr = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
with torch.inference_mode():
    up.render(lr, (256, 256))  # the heap grows to the chunks' blocks once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    up.render(lr, (256, 256))
print(keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_activation_memory_is_reused_not_faulted_in_again():
    """After keep_freed_memory (the API and CLI call it), a chunk's megabytes of activations,
    freed and allocated again, come from the heap instead of fresh pages from the system
    (without it a 64->512 render faults in 1.5 million pages: tools/bench/decoder_ab.py).
    A second 64->256 render in a fresh process: about 400,000 page faults with glibc's
    default malloc here; with the setting none on this machine, but 4,096 on one CI run
    (cause not found), so the bound is a tenth of the default, not zero."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc")

    def faults(**env: str) -> tuple[str, int]:
        out = subprocess.run([sys.executable, "-c", FAULTS], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True).stdout.split()
        return out[-2], int(out[-1])

    applied, kept = faults()
    applied_default, default = faults(MALLOC_TRIM_THRESHOLD_="131072")  # glibc's default: the setting steps aside
    assert applied == "True" and applied_default == "False"
    assert default > 10_000  # the default really faults the chunks in
    assert kept < default // 10
