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


def test_freed_activation_memory_is_reused_not_faulted_in_again():
    """After keep_freed_memory (the API and CLI call it), a chunk's megabytes of activations,
    freed and allocated again, come from the heap instead of fresh pages from the system
    (without it a 64->512 render faults in 1.5 million pages: benchmarks/decoder_ab.py)."""
    import resource
    import sys

    import torch

    from arasfsr.runtime import keep_freed_memory

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc")
    assert keep_freed_memory()
    for _ in range(2):  # the heap grows to the block once
        torch.empty(2**21).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):  # 20 blocks of 8 MB: 40,960 pages if each were fresh
        torch.empty(2**21).fill_(1.0)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 8192  # a few blocks at most
