"""The web app (``arasfsr ui``): its size rules, then the running server driven through
gradio_client and through a real headless Chromium (the distribution's, by Playwright).

The server runs in a subprocess on a free loopback port and is stopped by its pid.
"""

import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import arasfsr
from arasfsr.errors import InputError

if importlib.util.find_spec("gradio") is None:  # found without importing it (slow), the server imports it
    pytest.skip("the ui extra (gradio) is not installed", allow_module_level=True)
gradio_client = pytest.importorskip("gradio_client", reason="gradio_client is not installed")

from arasfsr.ui import jobs  # noqa: E402  (imports no gradio)

MODEL = "arasfsr-a-cpu"  # small and fast on 2 cores
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ---- sizes, without a server ----

@pytest.mark.parametrize("mode, scale, w, h, expected", [
    (jobs.BY_SCALE, "3.3", None, None, (165, 132)),
    (jobs.BY_SCALE, "2x3", None, None, (100, 120)),  # width first: SX=2, SY=3
    (jobs.BY_SCALE, " 2.5 × 0.5 ", None, None, (125, 20)),
    (jobs.BY_SIZE, "", 173, 131, (173, 131)),
    (jobs.BY_SIZE, "ignored", 7.0, 1, (7, 1)),
])
def test_target_size(mode, scale, w, h, expected):
    assert jobs.target_size((50, 40), mode, scale, w, h) == expected


@pytest.mark.parametrize("mode, scale, w, h, message", [
    (jobs.BY_SCALE, "0", None, None, "positive factor"),
    (jobs.BY_SCALE, "abc", None, None, "positive factor"),
    (jobs.BY_SCALE, "2x3x4", None, None, "positive factor"),
    (jobs.BY_SCALE, "inf", None, None, "positive factor"),
    (jobs.BY_SCALE, "0.001", None, None, "is empty"),
    (jobs.BY_SCALE, "100", None, None, "above this app's limit of 16,777,216"),
    (jobs.BY_SIZE, "", 0, 5, "at least 1"),
    (jobs.BY_SIZE, "", None, 5, "at least 1"),
    (jobs.BY_SIZE, "", 17.5, 5, "whole numbers"),
    (jobs.BY_SIZE, "", 5000, 5000, "above this app's limit"),
])
def test_impossible_sizes_are_refused(mode, scale, w, h, message):
    with pytest.raises(InputError, match=message):
        jobs.target_size((50, 40), mode, scale, w, h)


def test_without_gradio_the_command_says_how_to_install(monkeypatch):
    import argparse

    from arasfsr.errors import ArasfsrError
    from arasfsr.cli.ui import register, run

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["ui", "--port", "7999"])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 7999, run)
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio fails
    monkeypatch.delitem(sys.modules, "arasfsr.ui.app", raising=False)
    with pytest.raises(ArasfsrError, match=r"pip install 'arasfsr\[ui\]'"):
        run(args)


def test_problems_and_bugs_become_page_messages(capsys):
    import gradio as gr

    from arasfsr.ui.app import page_errors

    def message(exc: BaseException) -> str:
        with pytest.raises(gr.Error) as err, page_errors():
            raise exc
        return err.value.message

    assert message(InputError("x.png: no such file")) == "x.png: no such file"
    assert message(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")
                   ).startswith("out of memory; ask for a smaller output")
    assert capsys.readouterr().err == ""
    assert message(KeyError("k")) == "internal error, this is a bug in arasfsr (KeyError: 'k')"
    assert "Traceback" in capsys.readouterr().err  # a bug's traceback goes to the server's log only


def test_unknown_model_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "arasfsr.ui", "--model", "no-such-model"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["arasfsr: error: unknown model 'no-such-model'; "
                                                "`arasfsr models` lists the names"]


# ---- the running app ----

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER_LOG: dict[str, Path] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """URL of the app, started as a user would (``python -m arasfsr.ui``), stopped by pid."""
    tmp = tmp_path_factory.mktemp("ui-server")
    port = _free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp / "gradio"), "TMPDIR": str(tmp)}
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "arasfsr.ui", "--port", str(port), "--model", MODEL],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL) if proc.poll() is None else None
            pytest.fail(f"the app did not start:\n{(tmp / 'server.log').read_text()}")
        time.sleep(0.5)
    SERVER_LOG["path"] = tmp / "server.log"
    yield url
    os.kill(proc.pid, signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0  # a clean stop
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        log.close()
    assert not list(tmp.glob("arasfsr-ui-*")), "the app left its outputs folder behind"
    text = (tmp / "server.log").read_text()
    assert "Traceback" not in text, text  # user errors are messages, not logged crashes


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return gradio_client.Client(server, verbose=False, download_files=str(tmp_path_factory.mktemp("dl")))


@pytest.fixture(scope="module")
def face(tmp_path_factory) -> Path:
    """The astronaut's face (public domain) at 48x40: a small, non-square input."""
    from arasfsr.demo import astronaut_face

    path = tmp_path_factory.mktemp("in") / "astronaut face.png"
    astronaut_face().resize((48, 40), Image.BICUBIC).save(path)
    return path


def _png(path) -> Image.Image:
    with Image.open(path) as im:
        assert im.format == "PNG"  # lossless, not Gradio's default WebP
        return im.convert("RGB")


def _upscale(client, path, model, mode, scale="", w=None, h=None):
    return client.predict(gradio_client.handle_file(str(path)), model, mode, scale, w, h, api_name="/upscale")


@pytest.mark.parametrize("mode, scale, w, h, size", [
    (jobs.BY_SCALE, "2.5x1.55", None, None, (120, 62)),  # non-integer and per axis, width first
    (jobs.BY_SIZE, "", 173, 131, (173, 131)),
])
def test_upscale(client, face, mode, scale, w, h, size):
    nearest, bicubic, result, slider, info, png = _upscale(client, face, MODEL, mode, scale, w, h)
    img = Image.open(face).convert("RGB")
    expected = arasfsr.load_model(MODEL).upscale(img, size=size)
    assert np.array_equal(np.asarray(_png(result)), np.asarray(expected))  # the API's pixels, exactly
    assert np.array_equal(np.asarray(_png(png)), np.asarray(expected))
    assert np.array_equal(np.asarray(_png(bicubic)), np.asarray(arasfsr.load_model("bicubic").upscale(img, size=size)))
    assert np.array_equal(np.asarray(_png(nearest)), np.asarray(img.resize(size, Image.NEAREST)))
    assert [_png(p).size for p in slider] == [size, size]
    assert Path(png).name == f"astronaut_face_{size[0]}x{size[1]}_{MODEL}.png"
    assert f"**{size[0]}×{size[1]}** from 48×40" in info and MODEL in info


def test_two_users_at_once_get_their_own_results(server, client, face, tmp_path):
    other = gradio_client.Client(server, verbose=False, download_files=str(tmp_path))
    jobs_ = [c.submit(gradio_client.handle_file(str(face)), "bicubic", jobs.BY_SIZE, "", w, h, api_name="/upscale")
             for c, w, h in ((client, 101, 77), (other, 64, 200))]
    assert [_png(j.result()[2]).size for j in jobs_] == [(101, 77), (64, 200)]


@pytest.fixture(scope="module")
def group_photo(shared_data, tmp_path_factory) -> Path:
    """Three UTKFace test faces side by side on a plain background (360x150)."""
    files = sorted((shared_data / "utkface" / "test").glob("*.jpg"))[:3]
    canvas = Image.new("RGB", (360, 150), (70, 90, 110))
    for k, f in enumerate(files):
        canvas.paste(Image.open(f).convert("RGB").resize((100, 100), Image.BICUBIC), (15 + k * 115, 25))
    path = tmp_path_factory.mktemp("in") / "group.png"
    canvas.save(path)
    return path


def test_restore_photo_with_three_faces(client, group_photo):
    pytest.importorskip("onnxruntime", reason="the faces extra is not installed")
    from arasfsr.faces import load_detector, restore

    detected, restored, compare, crops, info, zip_path = client.predict(
        gradio_client.handle_file(str(group_photo)), MODEL, jobs.BY_SCALE, "2.5x2", None, None, api_name="/restore")
    assert info.startswith("**3 faces** restored, 360×150 to 900×300")
    photo = Image.open(group_photo).convert("RGB")
    expected = restore(photo, arasfsr.load_model(MODEL), size=(900, 300), detector=load_detector())
    assert np.array_equal(np.asarray(_png(restored)), np.asarray(expected.image))
    assert _png(detected).size == (360, 150) and _png(compare).size[1] == 300 + 18 + 16
    assert [_png(c["image"]).size for c in crops] == [(rf.crop_out,) * 2 for rf in expected.faces]
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(z.namelist())
        assert names == sorted(["group_restored.png", "group_compare.png", "group_faces.png", "group.json",
                                "group_face0.png", "group_face1.png", "group_face2.png"])
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(z.read("group_restored.png")))),
                              np.asarray(expected.image))
        record = json.loads(z.read("group.json"))
        assert record["output"] == [900, 300] and len(record["faces"]) == 3


def test_restore_without_a_face_says_so(client, tmp_path):
    pytest.importorskip("onnxruntime", reason="the faces extra is not installed")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 48), (120, 120, 120)).save(blank)
    detected, restored, _, crops, info, _ = client.predict(
        gradio_client.handle_file(str(blank)), "bicubic", jobs.BY_SIZE, "", 128, 96, api_name="/restore")
    assert "no face found" in info and crops == []
    assert _png(restored).size == (128, 96)


def test_compare_models_with_simulated_low_resolution(client, face):
    from arasfsr.evaluation.metrics import face_metrics

    grid, gallery, table, png = client.predict(
        gradio_client.handle_file(str(face)), ["bicubic", MODEL], True, 2, jobs.BY_SCALE, "4", None, None,
        api_name="/compare")
    hr = Image.open(face).convert("RGB")
    lr = hr.resize((24, 20), Image.BICUBIC)
    for item, name in zip(gallery, ["bicubic", MODEL]):
        expected = arasfsr.load_model(name).upscale(lr, size=(48, 40))
        assert np.array_equal(np.asarray(_png(item["image"])), np.asarray(expected))
        psnr = face_metrics(np.asarray(expected), np.asarray(hr))["psnr"]
        assert item["caption"] == f"{name}  {psnr:.2f} dB" and f"| `{name}` |" in table
        assert f"{psnr:.2f}" in table
    assert "24×20 to 48×40" in table and _png(grid).size == _png(png).size


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, face) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    (d / "broken.png").write_bytes(face.read_bytes()[:300])
    (d / "text.png").write_text("not an image")
    Image.new("L", (10000, 9500)).save(d / "huge.png")  # 95 Mpx in a small file
    return {p.name: p for p in d.iterdir()}


@pytest.mark.parametrize("name, message", [
    ("broken.png", "broken.png: cannot read image, it is damaged or truncated"),
    ("text.png", "text.png: not an image file"),
    ("huge.png", "huge.png: image has too many pixels to open safely"),
])
def test_bad_file_is_a_message(client, bad_files, name, message):
    for endpoint, args in (("/upscale", [MODEL, jobs.BY_SCALE, "2", None, None]),
                           ("/compare", [[MODEL], True, 2, jobs.BY_SCALE, "2", None, None])):
        with pytest.raises(gradio_client.exceptions.AppError) as err:
            client.predict(gradio_client.handle_file(str(bad_files[name])), *args, api_name=endpoint)
        assert str(err.value).startswith(message) and "Traceback" not in str(err.value)


@pytest.mark.parametrize("mode, scale, w, h, message", [
    (jobs.BY_SIZE, "", 0, 131, "size 0x131: width and height must be whole numbers of at least 1"),
    (jobs.BY_SCALE, "-2", None, None, "scale '-2': give a positive factor"),
    (jobs.BY_SCALE, "200", None, None, "the output 9600x8000 has 76,800,000 pixels, above this app's limit"),
])
def test_impossible_size_is_a_message_and_the_server_goes_on(client, face, mode, scale, w, h, message):
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        _upscale(client, face, MODEL, mode, scale, w, h)
    assert _png(_upscale(client, face, "bicubic", jobs.BY_SCALE, "2")[2]).size == (96, 80)


def test_an_exact_size_that_is_not_whole_is_refused_not_rounded(client, face):
    with pytest.raises(gradio_client.exceptions.AppError, match="size 10.5x20: width and height must be whole"):
        _upscale(client, face, "bicubic", jobs.BY_SIZE, "", 10.5, 20)


def test_the_server_says_where_it_is_and_gives_no_share_hint(server):
    text = SERVER_LOG["path"].read_text()
    assert f"arasfsr: the web app is at {server}" in text
    assert "share=True" not in text and "public link" not in text


# ---- a real browser ----

@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright (the Python package) is not installed"
    else:
        reason = None if CHROMIUM.exists() else f"no browser: {CHROMIUM} is missing (apt-get install chromium)"
    if reason:
        if os.environ.get("CI"):  # .ci/run installs the browser: there it must run
            pytest.fail(reason)
        print(f"\nskipping the browser test: {reason}")
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_in_a_real_browser(server, browser, tmp_path):
    from arasfsr.demo import astronaut_face

    face_png = tmp_path / "astronaut.png"
    astronaut_face().resize((48, 48), Image.BICUBIC).save(face_png)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    outside = []  # the page must need nothing from the internet: such requests fail and are noted

    def only_local(route):
        if route.request.url.startswith(server):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    page.goto(server)
    page.locator("#upscale-input input[type=file]").set_input_files(str(face_png))
    page.get_by_label("Width W (exact size)").fill("173")
    page.get_by_label("Height H (exact size)").fill("131")
    page.locator("#upscale-button").click()
    link = page.locator("#upscale-download a").first
    link.wait_for(timeout=120_000)
    assert "173×131 from 48×48" in page.locator("#upscale-info").inner_text()
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"astronaut_173x131_{MODEL}.png" and _png(saved).size == (173, 131)
    page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)  # the test artifact (docs/img/ui.png)
    print(f"\nscreenshot: {tmp_path / 'ui.png'}")
    if os.environ.get("ARASFSR_UI_SCREENSHOT"):
        shutil.copy(tmp_path / "ui.png", os.environ["ARASFSR_UI_SCREENSHOT"])

    # A damaged file in another tab: a message in the page, and no traceback.
    broken = tmp_path / "broken.png"
    broken.write_bytes(face_png.read_bytes()[:300])
    page.get_by_role("tab", name="Compare models").click()
    page.locator("#compare-input input[type=file]").set_input_files(str(broken))
    toast = page.get_by_text("broken.png: cannot read image, it is damaged or truncated")
    toast.first.wait_for(timeout=60_000)
    assert "Traceback" not in page.content()
    assert outside == []
    page.close()
