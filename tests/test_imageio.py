"""Image I/O: what happens to grayscale, alpha, colour profiles and EXIF on the way through
``upscale`` (API and CLI), and the messages about paths that cannot be read or written."""

from __future__ import annotations

import functools
import io
import os
import struct

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

import arasfsr
from arasfsr.cli.main import main
from arasfsr.imageio import fill_transparent, read_image, write_image

ORIENTATION, MAKE, EXIF_IFD, DATE_TAKEN, PIXEL_X = 0x0112, 0x010F, 0x8769, 0x9003, 0xA002


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def photo(w: int = 40, h: int = 30, seed: int = 0) -> Image.Image:
    """A smooth colour picture (a face-like gradient with noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w] / max(w, h)
    arr = np.stack([x, y, 1 - x], -1) * 200 + rng.random((h, w, 3)) * 40
    return Image.fromarray(arr.astype(np.uint8))


@functools.cache
def srgb_profile() -> bytes:  # cached: a new profile holds a new creation time
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def gray_profile() -> bytes:
    """Bytes that declare a grayscale ICC profile (only carried, never applied here)."""
    icc = bytearray(srgb_profile())
    icc[16:20] = b"GRAY"
    return bytes(icc)


def exif_with_thumbnail(orientation: int, thumbnail: bytes) -> bytes:
    """Raw EXIF: IFD0 (orientation, make, Exif IFD with a date and pixel width) and IFD1,
    where cameras keep a small JPEG preview of the picture."""
    def ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int) -> bytes:
        out = struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            out += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")
        return out + struct.pack("<I", next_ifd)

    def size(n_entries: int) -> int:
        return 2 + 12 * n_entries + 4

    make, date = b"ArasCam\0", b"2024:01:02 03:04:05\0"
    exif_at = 8 + size(3)
    ifd1_at = exif_at + size(2)
    make_at = ifd1_at + size(2)
    date_at = make_at + len(make)
    thumb_at = date_at + len(date)
    u32 = lambda v: struct.pack("<I", v)  # noqa: E731
    raw = (b"II*\0" + u32(8)
           + ifd([(ORIENTATION, 3, 1, struct.pack("<H", orientation)), (MAKE, 2, len(make), u32(make_at)),
                  (EXIF_IFD, 4, 1, u32(exif_at))], ifd1_at)
           + ifd([(DATE_TAKEN, 2, len(date), u32(date_at)), (PIXEL_X, 4, 1, u32(40))], 0)
           + ifd([(0x0201, 4, 1, u32(thumb_at)), (0x0202, 4, 1, u32(len(thumbnail)))], 0)
           + make + date + thumbnail)
    assert raw.index(thumbnail) == thumb_at
    return b"Exif\0\0" + raw


def tiny_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buf, "JPEG")
    return buf.getvalue()


# --- colour profile and EXIF -----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_and_exif_survive_the_command(capsys, tmp_path, suffix):
    src = tmp_path / "photo.jpg"
    icc, thumb = srgb_profile(), tiny_jpeg()
    photo().save(src, quality=95, icc_profile=icc, exif=exif_with_thumbnail(6, thumb))
    out = tmp_path / f"big{suffix}"
    code, _, err = run(capsys, "upscale", src, "-o", out, "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "applied EXIF orientation 6" in err
    with Image.open(out) as img:
        assert img.size == (60, 80)  # rotated, as the tag said, then x2
        assert img.info.get("icc_profile") == icc
        exif = img.getexif()
        assert exif[ORIENTATION] == 1  # applied, so no viewer turns it again
        assert exif[MAKE] == "ArasCam"
        assert exif.get_ifd(EXIF_IFD)[DATE_TAKEN] == "2024:01:02 03:04:05"
        assert exif.get_ifd(EXIF_IFD)[PIXEL_X] == 60  # the output's width, not the input's
        assert not exif.get_ifd(ExifTags.IFD.IFD1)  # IFD1 and its stale thumbnail are gone
    assert thumb not in out.read_bytes()


def test_api_carries_metadata_and_keeps_an_unapplied_orientation(tmp_path):
    src = tmp_path / "photo.jpg"
    photo().save(src, icc_profile=srgb_profile(), exif=exif_with_thumbnail(6, tiny_jpeg()))
    up = arasfsr.load_model("bicubic")
    with Image.open(src) as img:  # opened by the caller: orientation NOT applied
        out = up.upscale(img, scale=2)
    assert out.info["icc_profile"] == srgb_profile()
    exif = Image.Exif()
    exif.load(out.info["exif"])
    assert exif[ORIENTATION] == 6 and exif[MAKE] == "ArasCam"  # still true of the output
    assert not exif.get_ifd(ExifTags.IFD.IFD1)


def test_a_profile_for_other_colours_is_not_carried(tmp_path):
    up = arasfsr.load_model("bicubic")
    gray = Image.fromarray(np.asarray(photo())[..., 0])
    gray.info["icc_profile"] = srgb_profile()  # an RGB profile on a grayscale image: meaningless
    assert "icc_profile" not in up.upscale(gray, scale=2).info
    gray.info["icc_profile"] = gray_profile()
    out = up.upscale(gray, scale=2)
    assert out.info["icc_profile"] == gray_profile()
    write_image(out, tmp_path / "g.png")
    with Image.open(tmp_path / "g.png") as img:
        assert img.mode == "L" and img.info["icc_profile"] == gray_profile()
    write_image(out, tmp_path / "g.webp")  # WEBP has no grayscale: written as RGB, without the profile
    with Image.open(tmp_path / "g.webp") as img:
        assert "icc_profile" not in img.info


def test_restore_carries_the_photos_metadata(tmp_path):
    from arasfsr.faces.restore import restore

    src = tmp_path / "photo.jpg"
    photo().save(src, icc_profile=srgb_profile(), exif=exif_with_thumbnail(1, tiny_jpeg()))
    img, _ = read_image(src)  # as restore reads it: RGB
    res = restore(img, arasfsr.load_model("bicubic"), scale=2, faces=[])
    write_image(res.image, tmp_path / "big.jpg")
    with Image.open(tmp_path / "big.jpg") as out:
        assert out.info["icc_profile"] == srgb_profile() and out.getexif()[MAKE] == "ArasCam"


def test_cmyk_profile_is_dropped_with_a_note(capsys, tmp_path):
    icc = bytearray(srgb_profile())
    icc[16:20] = b"CMYK"
    src = tmp_path / "cmyk.jpg"
    photo().convert("CMYK").save(src, icc_profile=bytes(icc))
    code, _, err = run(capsys, "upscale", src, "-o", tmp_path / "o.png", "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "converted CMYK to RGB" in err and "its CMYK colour profile does not describe the RGB output: dropped" in err
    with Image.open(tmp_path / "o.png") as img:
        assert img.mode == "RGB" and "icc_profile" not in img.info


def test_formats_without_metadata_say_it_is_dropped(capsys, tmp_path):
    src = tmp_path / "photo.png"
    photo().save(src, icc_profile=srgb_profile())
    code, _, err = run(capsys, "upscale", src, "-o", tmp_path / "o.bmp", "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "BMP cannot hold its colour profile: dropped" in err


# --- grayscale ---------------------------------------------------------------------------


def test_grayscale_stays_grayscale_and_untinted(capsys, tmp_path, tiny):
    src = tmp_path / "gray.png"
    Image.fromarray(np.asarray(photo())[..., 1]).save(src)
    out = tmp_path / "o.png"
    code, _, err = run(capsys, "upscale", src, "-o", out, "--scale", "2", "--model", tiny)
    assert code == 0, err
    assert "grayscale: super-resolved on its luminance, written as grayscale" in err
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (80, 60)
    # The same image stored as RGB comes back with three equal channels.
    rgb = arasfsr.load_model(tiny).upscale(Image.open(src).convert("RGB"), scale=2)
    arr = np.asarray(rgb)
    assert rgb.mode == "RGB" and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    # Without the averaging the model's channels differ: this is what the test guards against.
    colour = np.asarray(arasfsr.load_model(tiny).upscale(np.asarray(photo()), scale=2))
    assert (colour[..., 0] != colour[..., 1]).any()


def test_sixteen_bit_grayscale_becomes_8_bit_grayscale(tmp_path):
    src = tmp_path / "g16.png"
    Image.fromarray(np.full((12, 10), 40000, np.uint16)).save(src)
    img, notes = read_image(src, rgb=False)
    assert img.mode == "L" and np.asarray(img).max() == round(40000 / 257)
    assert "converted I;16 (16-bit grayscale) to 8-bit grayscale" in notes
    assert arasfsr.load_model("bicubic").upscale(img, scale=2).mode == "L"


def test_arrays_keep_their_shape(tiny):
    up = arasfsr.load_model(tiny)
    rgb = np.asarray(photo())
    assert up.upscale(rgb[..., 0].copy(), size=(50, 35)).shape == (35, 50)
    assert up.upscale(rgb, size=(50, 35)).shape == (35, 50, 3)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    out = up.upscale(rgba, size=(50, 35))
    assert out.shape == (35, 50, 4) and (out[..., 3] == 255).all()
    with pytest.raises(arasfsr.InputError, match="HxW, HxWx3 or HxWx4"):
        up.upscale(rgb[..., :2].copy(), scale=2)


# --- alpha -----------------------------------------------------------------------------


def cutout(mode: str = "RGBA") -> Image.Image:
    """Opaque red, a transparent 8x8 square at (16..24, 8..16), black under the transparency."""
    arr = np.zeros((30, 40, 4), np.uint8)
    arr[..., 0], arr[..., 3] = 220, 255
    arr[8:16, 16:24] = 0
    img = Image.fromarray(arr)
    return img.convert("LA") if mode == "LA" else img


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_and_the_hole_stays_where_it_was(capsys, tmp_path, mode):
    src = tmp_path / "cut.png"
    cutout(mode).save(src)
    out = tmp_path / "o.png"
    code, _, err = run(capsys, "upscale", src, "-o", out, "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "transparency kept" in err
    with Image.open(out) as img:
        assert img.mode == mode and img.size == (80, 60)
        alpha = np.asarray(img.getchannel("A"))
    assert (alpha[18:30, 34:46] == 0).all()  # the hole, x2, less its soft edge
    assert (alpha[:12] == 255).all() and (alpha[36:] == 255).all()


def test_no_dark_fringe_from_the_colour_under_transparency():
    out = np.asarray(arasfsr.load_model("bicubic").upscale(cutout(), scale=4)).astype(int)
    seen = out[..., 3] > 0
    # Every visible pixel is the opaque red: the black under the hole is not mixed in.
    assert (abs(out[seen][:, 0] - 220) <= 2).all() and (out[seen][:, 1:3] <= 2).all()


def test_fill_transparent_keeps_visible_colours():
    rgba = np.asarray(cutout())
    colour = rgba[..., :3]
    filled = fill_transparent(colour, rgba[..., 3])
    assert (filled == [220, 0, 0]).all()  # the hole takes its surroundings' colour
    assert fill_transparent(colour, np.zeros((30, 40), np.uint8)) is colour  # nothing visible: nothing to do


@pytest.mark.parametrize("suffix", [".jpg", ".bmp"])
def test_output_without_alpha_lays_transparency_on_white(capsys, tmp_path, suffix):
    src = tmp_path / "cut.png"
    cutout().save(src)
    out = tmp_path / f"o{suffix}"
    code, _, err = run(capsys, "upscale", src, "-o", out, "--scale", "2", "--model", "bicubic")
    assert code == 0, err
    assert "cannot hold transparency: transparent areas made white" in err
    with Image.open(out) as img:
        arr = np.asarray(img)
    assert img.mode == "RGB" and (arr[20:28, 36:44] > 240).all() and arr[2, 2, 0] > 200 > arr[2, 2, 1]


def test_palette_with_transparency_becomes_rgba(tmp_path):
    pal = Image.new("P", (6, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30])
    pal.putpixel((0, 0), 0)
    pal.save(tmp_path / "t.png", transparency=0)
    img, notes = read_image(tmp_path / "t.png", rgb=False)
    assert img.mode == "RGBA" and img.getpixel((0, 0))[3] == 0 and img.getpixel((1, 0)) == (10, 200, 30, 255)
    assert "converted P (palette) to RGBA" in notes


# --- messages about paths ------------------------------------------------------------------


def test_output_that_is_a_folder_says_so(capsys, tmp_path):
    src = tmp_path / "a.png"
    photo().save(src)
    (tmp_path / "outs").mkdir()
    code, _, err = run(capsys, "upscale", src, "-o", tmp_path / "outs", "--scale", "2", "--model", "bicubic")
    assert code == 2 and "is a folder" in err and "unknown output format" not in err


def test_symlink_loop_and_broken_link_are_named(capsys, tmp_path):
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    code, _, err = run(capsys, "upscale", tmp_path / "a.png", "-o", tmp_path / "o.png", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and "symbolic link loop" in err and "no such file" not in err
    code, _, err = run(capsys, "upscale", tmp_path / "gone.png", "-o", tmp_path / "o.png", "--scale", "2",
                       "--model", "bicubic")
    assert code == 2 and "broken symbolic link" in err and "nowhere.png" in err
    with pytest.raises(arasfsr.InputError, match="symbolic link loop"):
        read_image(tmp_path / "a.png")


def test_export_error_names_the_output_not_the_hidden_temporary(capsys, tmp_path, tiny, monkeypatch):
    import arasfsr.onnx_engine as onnx_engine

    def full_disk(model, path):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(onnx_engine, "export_onnx", full_disk)
    target = tmp_path / "m.onnx"
    code, _, err = run(capsys, "export", "--model", tiny, "--onnx", target)
    assert code == 2, err
    assert f"{target}: No space left on device" in err and ".part" not in err
    assert os.listdir(tmp_path) == []

