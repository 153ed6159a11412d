"""OpenMP's wait policy, asked for before torch loads (``arasfsr/__init__.py`` imports this first).

OpenMP reads ``OMP_WAIT_POLICY`` once, when torch loads it; a user's own setting wins. Waiting
threads sleep instead of spinning: with the default spin, one other busy process made a
64->512 render 5-8x slower (docs/performance.md, "On a busy machine"). Where OpenMP was loaded
first (``import torch`` before ``import arasfsr``) the setting comes too late:
:data:`WAIT_POLICY` is then "default", and :class:`arasfsr.runtime.ThreadPolicy` sizes each
render's threads to the CPUs other processes leave free.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "user" if "OMP_WAIT_POLICY" in os.environ else "default" if "torch" in sys.modules else "passive"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
