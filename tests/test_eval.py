import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from arasfsr.cli.main import main
from arasfsr.evaluation.metrics import face_metrics, rgb_to_y
from arasfsr.protocols import FFHQ_CROP, PROTOCOLS, ffhq_crop_box, list_faces, utkface_groups

SRC = Path(__file__).resolve().parents[1] / "src"


def test_y_channel_is_bt601_truncated():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], np.uint8)
    y = rgb_to_y(rgb)
    # 16 + 65.481 = 81.481 -> 81; 10/255*65.481 + 200/255*128.553 + 30/255*24.966 + 16 = 122.33 -> 122
    assert y.tolist() == [[16, 235, 81, 122]] and y.dtype == np.uint8


def test_metrics_behave():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    noisy = np.clip(hr.astype(int) + rng.integers(-3, 4, hr.shape), 0, 255).astype(np.uint8)
    worse = np.clip(hr.astype(int) + rng.integers(-30, 31, hr.shape), 0, 255).astype(np.uint8)
    good, bad = face_metrics(noisy, hr), face_metrics(worse, hr)
    assert good["psnr"] > bad["psnr"] + 10 and good["ssim"] > bad["ssim"]
    same = face_metrics(hr, hr)
    assert same["ssim"] == pytest.approx(1.0) and same["psnr"] == float("inf")
    with pytest.raises(ValueError):
        face_metrics(hr[:-1], hr)


def test_protocol_rows_match_the_issue():
    sizes = lambda p: {(r.dataset.split("/")[0], r.degradation, r.lr, r.hr) for r in PROTOCOLS[p].rows}
    assert sizes("A") == {("utkface", "bicubic", 64, h) for h in (96, 128, 192)} | \
        {("ffhq", "bicubic", 64, h) for h in (96, 128, 256, 512)}
    assert sizes("B") == {("utkface", "bicubic", 12, 96), ("utkface", "bicubic", 16, 128),
                          ("utkface", "bicubic", 24, 192), ("ffhq", "bicubic", 32, 256)}
    assert sizes("C") == {("utkface", "nn-jpeg", 32, 64), ("utkface", "nn-jpeg", 64, 128)}
    assert PROTOCOLS["D"].rows == PROTOCOLS["A"].rows
    assert sizes("P") == sizes("A") | sizes("B") | sizes("C") and len(PROTOCOLS["P"].rows) == 13
    assert ffhq_crop_box((1024, 1024)) == FFHQ_CROP and ffhq_crop_box((512, 512)) == (96, 150, 416, 470)


def test_utkface_groups_from_file_names():
    assert utkface_groups("26_1_2_20170116174525125.jpg") == {"age": "20-29", "gender": "female", "race": "Asian"}
    assert utkface_groups("85_0_4_2017.jpg") == {"age": "60+", "gender": "male", "race": "Others"}
    assert utkface_groups("61_1_20170109142408075.jpg") == {"age": "60+", "gender": "female", "race": "unknown"}
    assert utkface_groups("odd.jpg")["age"] == "unknown"


def _independent_bicubic_scores(files: list[Path], lr: int, hr: int) -> tuple[float, float, float]:
    """PIL + scikit-image + numpy only, nothing from arasfsr: the authors' metric recipe
    on the bicubic baseline (Pillow bicubic in float precision = torch's anti-aliased bicubic)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    def y(a):
        return (16 + a.astype(np.float64) / 255 @ np.array([65.481, 128.553, 24.966])).astype(np.uint8)

    def upsample(img, size):
        a = np.asarray(img, np.float32)
        chans = [np.asarray(Image.fromarray(a[..., c], "F").resize(size, Image.BICUBIC)) for c in range(3)]
        return np.clip(np.round(np.stack(chans, -1)), 0, 255).astype(np.uint8)

    scores = []
    for f in files:
        gt = Image.open(f).convert("RGB")
        hr_y = y(np.asarray(gt.resize((hr, hr), Image.BICUBIC)))
        sr_y = y(upsample(gt.resize((lr, lr), Image.BICUBIC), (hr, hr)))
        scores.append((peak_signal_noise_ratio(hr_y, sr_y, data_range=255), structural_similarity(hr_y, sr_y),
                       structural_similarity(hr_y, sr_y, gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=255)))
    return tuple(np.mean(scores, axis=0))


def test_eval_bicubic_matches_an_independent_script(face_data, tmp_path, capsys):
    out = tmp_path / "a"
    # --limit 6 of the 8 synthetic test faces (evenly spaced); ffhq/test has only 2.
    assert main(["eval", "--protocol", "A", "--model", "bicubic", "--limit", "6", "--data", str(face_data),
                 "--out", str(out), "--tier", "smoke"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["tier"] == "smoke" and res["face_counts"] == {"utkface/test": 6, "ffhq/test": 2}
    files = list_faces(face_data, "utkface/test", 6)
    for hr in (96, 128, 192):
        cell = next(r for r in res["results"] if r["row"] == f"utkface/test bicubic 64-{hr}")
        assert cell["count"] == 6 and cell["lr_size"] == [64, 64] and cell["hr_size"] == [hr, hr]
        psnr, ssim, ssim_m = _independent_bicubic_scores(files, 64, hr)
        assert abs(cell["psnr"] - psnr) < 0.01
        assert abs(cell["ssim"] - ssim) < 1e-4 and abs(cell["ssim_matlab"] - ssim_m) < 1e-4
        assert sum(g["count"] for g in cell["groups"]["gender"].values()) == 6
    md = (out / "results.md").read_text()
    assert "| bicubic |" in md and "x8 64-512" in md and "Per group" in md
    for png in ("psnr_vs_scale.png", "grid_test.png", "grid_realworld.png"):
        with Image.open(out / png) as im:
            assert im.size[0] > 200
    # A second run must not replace the results silently.
    assert main(["eval", "--protocol", "A", "--model", "bicubic", "--limit", "2", "--data", str(face_data),
                 "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
def test_torchrun_shards_give_the_single_process_result(face_data, tmp_path):
    common = ["eval", "--protocol", "C", "--model", "bicubic", "--limit", "5", "--no-pictures",
              "--data", str(face_data)]
    assert main(common + ["--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "arasfsr.cli"] + common + ["--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert two["results"] == one["results"]


def test_compare_grid_and_clear_errors(face_data, tmp_path, capsys, tiny):
    assert main(["eval", "--protocol", "C", "--model", tiny, "--limit", "2", "--no-pictures",
                 "--data", str(face_data), "--out", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "c" / "results.json").read_text())
    assert [m["name"] for m in res["models"]] == ["bicubic", "tiny"]  # bicubic always, first
    assert res["models"][1]["sha256"] == hashlib.sha256(Path(tiny).read_bytes()).hexdigest()  # which weights
    assert {(r["model"], r["degradation"]) for r in res["results"]} == {("bicubic", "nn-jpeg"), ("tiny", "nn-jpeg")}
    assert "| tiny |" in (tmp_path / "c" / "results.md").read_text()
    faces = list_faces(face_data, "utkface/test", 2)
    grid = tmp_path / "grid.png"
    assert main(["compare", "--model", tiny, "--faces", *map(str, faces), "--lr", "16", "--hr", "64",
                 "--out", str(grid)]) == 0
    with Image.open(grid) as im:
        assert im.size[0] > 100
    assert main(["compare", "--faces", str(faces[0]), "--out", str(grid)]) == 2  # exists
    assert main(["eval", "--protocol", "A", "--data", str(tmp_path / "nowhere"), "--model", "bicubic",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "no such folder" in err and "Traceback" not in err
    assert main(["eval", "--protocol", "Z", "--out", str(tmp_path / "y")]) == 2


def test_only_keeps_the_named_rows(face_data, tmp_path):
    out = tmp_path / "only"
    assert main(["eval", "--protocol", "B", "--only", "16-128", "--model", "bicubic", "--limit", "2",
                 "--data", str(face_data), "--out", str(out), "--no-pictures"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert {r["label"] for r in res["results"]} == {"x8 16-128"}
    assert main(["eval", "--protocol", "B", "--only", "7-9", "--model", "bicubic", "--limit", "2",
                 "--data", str(face_data), "--out", str(tmp_path / "none"), "--no-pictures"]) == 2


def test_split_val_scores_the_val_faces_and_leaves_out_sets_without_them(face_data, tmp_path):
    """--split val: model selection on the val faces; ffhq has only test faces, so its rows go."""
    out = tmp_path / "val"
    assert main(["eval", "--protocol", "B", "--model", "bicubic", "--split", "val", "--limit", "2",
                 "--data", str(face_data), "--out", str(out), "--no-pictures"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["split"] == "val" and set(res["face_counts"]) == {"utkface/val"}
    assert {r["row"].split()[0] for r in res["results"]} == {"utkface/val"}
    assert len(res["results"]) == 3  # B's three utkface rows; its ffhq row is left out
    assert main(["eval", "--protocol", "B", "--model", "bicubic", "--split", "train", "--data", str(face_data),
                 "--out", str(tmp_path / "bad"), "--no-pictures"]) == 2


def test_a_table_of_weights_retrained_since_says_so():
    """The tools that write RESULTS.md and the docs compare the weights a result scored
    (its sha256) with the shipped ones, and mark the tables of a model retrained since."""
    from arasfsr.evaluation.runner import weights_sha256
    from tools.weights import retrained_note, retrained_since

    now = weights_sha256("arasfsr")
    assert retrained_since({"models": [{"name": "bicubic", "sha256": None}, {"name": "arasfsr", "sha256": now}]}) == []
    old = {"models": [{"name": "arasfsr", "sha256": "0" * 64}, {"name": "my-run", "sha256": "1" * 64}]}
    assert retrained_since(old) == ["arasfsr"]  # a model that does not ship is not judged
    assert retrained_since({"model": "arasfsr", "sha256": "0" * 64}) == ["arasfsr"]  # eval-uncertainty's results
    assert "earlier weights of `arasfsr`" in retrained_note(old, "arasfsr eval ...")
    assert retrained_note({"models": [{"name": "arasfsr"}]}, "x") == ""  # nothing recorded: nothing claimed


def test_a_re_measure_command_says_overwrite_once():
    from tools.weights import with_overwrite

    assert with_overwrite("arasfsr eval-uncertainty --out x --overwrite") == "arasfsr eval-uncertainty --out x --overwrite"
    assert with_overwrite("arasfsr eval --out x") == "arasfsr eval --out x --overwrite"
