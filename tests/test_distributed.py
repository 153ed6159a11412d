"""Ray Data: the same files as the single-process CLI, on a local Ray instance with 2 CPUs."""

import json

import numpy as np
import pytest
from PIL import Image

from arasfsr.cli.main import main

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'arasfsr[ray]'): the Ray test is skipped")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")  # slow to start: once per module
    yield ray
    ray.shutdown()


def files_under(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def faces(tmp_path):
    rng = np.random.default_rng(7)
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(folder / f"f{i}.png")
    Image.fromarray(rng.integers(0, 256, (12, 20, 3), np.uint8)).save(folder / "sub" / "wide.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (16, 16), np.uint8)).save(folder / "sub" / "gray.png")
    (folder / "bad.png").write_bytes(b"not an image")
    return folder


def test_ray_writes_the_files_of_the_cli_and_resumes(local_ray, faces, tmp_path, capsys):
    from arasfsr.distributed import upscale_dataset

    common = ["--scale", "2", "--model", "arasfsr-a-cpu", "--recursive", "--continue-on-error"]
    assert main(["upscale", str(faces), "--out-dir", str(tmp_path / "cli"), *common]) == 3
    expected = files_under(tmp_path / "cli")
    assert len(expected) == 5

    out = tmp_path / "ray"
    records = upscale_dataset([faces], out, model="arasfsr-a-cpu", scale=2, recursive=True, batch_size=2,
                              report=tmp_path / "report.json")
    assert files_under(out) == expected  # same names, same bytes
    assert sorted(r["status"] for r in records) == ["failed"] + ["ok"] * 5
    assert json.loads((tmp_path / "report.json").read_text())["failed"] == 1

    # The CLI form on the running instance, resuming: only the missing output is made.
    (out / "sub" / "gray.png").unlink()
    kept = (out / "f0.png").stat().st_mtime_ns
    capsys.readouterr()
    code = main(["upscale", str(faces), "--out-dir", str(out), *common, "--ray", "--skip-existing"])
    stdout = capsys.readouterr().out
    assert code == 3 and "wrote 1 images" in stdout and "skipped 4" in stdout
    assert files_under(out) == expected and (out / "f0.png").stat().st_mtime_ns == kept
