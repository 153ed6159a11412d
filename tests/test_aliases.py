"""No input is lost through an alias: a hard link, a bind mount, another case of a name on a
case-insensitive file system (outputs and inputs are compared by the file they name)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import arasfsr.paths
from cli_helpers import files, image, run


def test_an_output_through_a_hard_link_is_refused_as_its_input(capsys, tmp_path):
    src = image(tmp_path / "in" / "a.png")
    (tmp_path / "in2").mkdir()
    os.link(src, tmp_path / "in2" / "a.png")  # the same file under another name
    before = files(tmp_path)
    code, _, err = run(capsys, "upscale", src, "-o", tmp_path / "in2" / "a.png", "--scale", "2",
                       "--model", "bicubic", "--overwrite")
    assert code == 2 and "output would replace its input" in err
    assert files(tmp_path) == before


@pytest.fixture
def bind_mount(tmp_path):
    """``in2`` bound onto ``in`` (mount --bind): skipped where mounting is not allowed."""
    src, alias = tmp_path / "in", tmp_path / "in2"
    src.mkdir()
    alias.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "--bind", str(src), str(alias)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("mount --bind is not allowed here")
    try:
        yield src, alias
    finally:
        subprocess.run(["umount", str(alias)], check=True)


def test_a_bind_mounted_folder_is_the_same_folder(capsys, bind_mount):
    src, alias = bind_mount
    for i in range(3):
        image(src / f"f{i}.png", seed=i)
    before = files(src)
    code, _, err = run(capsys, "upscale", src / "f0.png", "-o", alias / "f0.png", "--scale", "2",
                       "--model", "bicubic", "--overwrite")
    assert code == 2 and "output would replace its input" in err
    code, _, err = run(capsys, "upscale", src, "--out-dir", alias, "--scale", "2", "--model", "bicubic",
                       "--overwrite")  # every input would have been replaced by its own output
    assert code == 2 and "would replace" in err
    assert files(src) == before


def test_names_that_differ_in_case_collide_on_a_case_insensitive_file_system(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(arasfsr.paths, "case_insensitive", lambda folder: True)  # as on macOS or Windows
    a, b = image(tmp_path / "a" / "Face.png"), image(tmp_path / "b" / "face.png", seed=1)
    code, _, err = run(capsys, "upscale", a, b, "--out-dir", tmp_path / "out", "--scale", "2", "--model", "bicubic")
    assert code == 2 and "two outputs would be written to this file" in err
    code, _, err = run(capsys, "upscale", b, "-o", tmp_path / "b" / "FACE.png", "--scale", "2",
                       "--model", "bicubic", "--overwrite")
    assert code == 2 and "output would replace its input" in err
    monkeypatch.undo()  # this file system tells the names apart: both runs go ahead
    assert run(capsys, "upscale", a, b, "--out-dir", tmp_path / "out", "--scale", "2", "--model", "bicubic")[0] == 0


def test_the_case_probe_reads_the_file_system(tmp_path):
    (tmp_path / "Probe.txt").write_text("x")
    arasfsr.paths._probe_case.cache_clear()
    found = (tmp_path / "PROBE.TXT").exists()  # what the file system itself says
    assert arasfsr.paths.case_insensitive(tmp_path) is found
    assert arasfsr.paths.same_file(tmp_path / "Probe.txt", tmp_path / "probe.txt") is found
