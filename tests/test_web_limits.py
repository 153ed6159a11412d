"""The web app's memory is bounded per request: uploads measured before decoding, each
model compared once and a few at most, one job and one preview at a time."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from arasfsr.errors import InputError
from cli_helpers import image


def test_an_upload_is_measured_before_it_is_decoded(tmp_path, monkeypatch):
    pytest.importorskip("gradio")
    from arasfsr.ui import jobs

    Image.new("L", (5000, 5000)).save(tmp_path / "big.png")  # a small file of 25 Mpx
    monkeypatch.setattr(jobs, "read_image", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(InputError, match="big.png: 5000x5000 is 25,000,000 pixels, above this app's limit"):
        jobs.read_upload(tmp_path / "big.png")


def test_compare_takes_each_model_once_and_a_few_at_most(tmp_path):
    pytest.importorskip("gradio")
    from arasfsr.ui import jobs

    face = image(tmp_path / "face.png", size=(32, 32))
    result = jobs.compare_models(jobs.ModelCache(), face, ["bicubic"] * 30, True, 2, jobs.BY_SCALE, "2", None, None,
                                 tmp_path)
    assert [caption.split()[0] for _, caption in result.outputs] == ["bicubic"]
    names = [f"model-{k}" for k in range(jobs.MAX_COMPARED + 1)]
    with pytest.raises(InputError, match=f"compare at most {jobs.MAX_COMPARED}"):
        jobs.compare_models(jobs.ModelCache(), face, names, True, 2, jobs.BY_SCALE, "2", None, None, tmp_path)


def test_the_page_runs_one_job_and_one_preview_at_a_time():
    pytest.importorskip("gradio")
    from arasfsr.ui.app import build_app

    app = build_app("bicubic")
    try:
        groups = {(fn.concurrency_id, fn.concurrency_limit) for fn in app.fns.values()
                  if fn.name not in ("<lambda>", None) and fn.fn is not None}
        assert ("models", 1) in groups and ("previews", 1) in groups
        assert {limit for _, limit in groups} == {1}
    finally:
        shutil.rmtree(app.outputs_root, ignore_errors=True)
