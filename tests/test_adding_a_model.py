"""Adding a model is one file: the example model of docs/models.md, added as it stands to a copy of
the package, trains through ``arasfsr train`` and then serves every command by name."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

import arasfsr

MODELS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "models.md"


def documented_example() -> str:
    """The model file shown in the "Adding a model" section of docs/models.md."""
    section = MODELS_PAGE.read_text().split("## Adding a model", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def copy_of_the_package(site: Path) -> Path:
    """The installed package under ``site``: its folders made anew, its files linked (the
    source tree is never written to)."""
    package = site / "arasfsr"
    shutil.copytree(Path(arasfsr.__file__).parent, package, copy_function=os.symlink,
                    ignore=shutil.ignore_patterns("__pycache__"))
    return package


def test_the_documented_example_model_is_one_file_that_trains_and_ships(tmp_path, face_data):
    site = tmp_path / "site"
    package = copy_of_the_package(site)
    (package / "models" / "fourier.py").write_text(documented_example())  # the one file added

    def arasfsr_command(*args) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "arasfsr", *map(str, args)], capture_output=True,
                              text=True, env=env, cwd=tmp_path, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    assert "e-fourier" in arasfsr_command("models", "--all").stdout
    run = tmp_path / "run"
    arasfsr_command("train", "smoke/A-fourier", "--data-root", face_data, "--out", run,
                    "--set", "train.iterations=3", "--set", "train.val_every=3")
    card = json.loads((run / "model.json").read_text())
    assert (card["model"], card["protocol"], card["tier"], card["iterations"]) == ("e-fourier", "A", "smoke", 3)

    # Shipped under a name: its weights and card in the package's weights/ folder.
    for suffix in (".safetensors", ".json"):
        shutil.copy(run / f"model{suffix}", package / "weights" / f"fourier-a-smoke{suffix}")
    info = json.loads(arasfsr_command("models", "--info", "fourier-a-smoke").stdout)
    assert (info["arch"], info["trained"], info["iterations"]) == ("fourier", True, 3)
    assert info["config"]["freqs"] == 4 and info["config"]["hidden"] == [16]  # the smoke tier's sizes
    face = sorted((face_data / "utkface" / "test").iterdir())[0]
    out = tmp_path / "face_x2.5.png"
    arasfsr_command("upscale", face, "-o", out, "--scale", "2.5", "--model", "fourier-a-smoke")
    with Image.open(out) as img:
        assert img.size == (500, 500)
