import os
from pathlib import Path

import pytest
import torch

# Two cores: keep tests from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))

from arasfsr.data import resolve_data_root

SHARED_DATA = resolve_data_root()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"test data not found at {SHARED_DATA}; set ARASFSR_DATA")
    return SHARED_DATA
