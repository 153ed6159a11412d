"""The device-resident training path: Pillow parity of the batched resize, batches equal to
the workers path's, the per-face query counts of protocol P, recipes, EMA and schedules."""

import numpy as np
import pytest
import torch
from PIL import Image

from arasfsr.data.resample import WeightTable, pillow_weights, resample, vertical_first
from arasfsr.training import load_config
from arasfsr.training.data import StepBatches, augment, list_images, subset
from arasfsr.training.device_data import DeviceBatches, StepPlans, decode_faces
from arasfsr.training.ema import make_ema, update_ema
from arasfsr.training.module import lr_factor, pixel_loss


@pytest.fixture(scope="module")
def faces(face_data):
    files = subset(list_images(face_data / "utkface" / "train"), 6)
    return files, decode_faces(files)


def _val_faces(face_data, n):
    files = list_images(face_data / "utkface" / "val")[:n]
    return [Image.open(f).convert("RGB") for f in files]


def test_batched_resize_is_pillow_bit_for_bit(face_data):
    """The device resize equals Pillow's: every protocol LR size (12..96), the HR sizes,
    flips, per-sample sizes in one batch, crops (non-square: either pass order)."""
    imgs = _val_faces(face_data, 4)
    arr = torch.from_numpy(np.stack([np.asarray(i) for i in imgs])).permute(0, 3, 1, 2)
    table = WeightTable(200, 200)
    sizes = list(range(12, 97)) + [128, 192, 200]
    for start in range(0, len(sizes), 4):
        chunk = sizes[start:start + 4] + [sizes[0]] * (4 - len(sizes[start:start + 4]))
        s, flip = torch.tensor(chunk), torch.tensor([True, False, True, False])
        out = resample(arr, table.rows(s), table.rows(s, flip))
        for i, (n, f) in enumerate(zip(chunk, flip.tolist())):
            im = imgs[i].transpose(Image.FLIP_LEFT_RIGHT) if f else imgs[i]
            assert np.array_equal(out[i, :, :n, :n].permute(1, 2, 0).numpy(), np.asarray(im.resize((n, n), Image.BICUBIC)))
            assert not out[i, :, n:].any() and not out[i, :, :, n:].any()  # padding stays zero
    for kind, flt in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)):
        boxes = [(10, 5, 120, 180, 128, 128), (0, 0, 200, 200, 16, 16), (33, 17, 141, 60, 40, 20), (5, 40, 190, 90, 64, 96)]
        for left, top, w, h, ox, oy in boxes:
            wx = pillow_weights(ox, w, 200, ox, offset=left, kind=kind)
            wy = pillow_weights(oy, h, 200, oy, offset=top, kind=kind)
            vf = torch.tensor([vertical_first(w, h, ox, oy)])
            out = resample(arr[:1], wy, wx, vf)[0].permute(1, 2, 0).numpy()
            ref = np.asarray(imgs[0].crop((left, top, left + w, top + h)).resize((ox, oy), flt))
            assert np.array_equal(out, ref), (kind, left, top, w, h, ox, oy)


def _workers_and_device(files, faces, name, step, batch_size=None, seed=3, rank=0, world=1):
    cfg = load_config(name)
    bs = batch_size or cfg["train"]["batch_size"]
    steps = StepBatches(files, cfg["data"], bs, seed=seed, rank=rank, world_size=world)
    device = DeviceBatches(faces, cfg["data"], seed, bs, rank, world)(StepPlans(steps, faces)[step])
    return cfg, steps, device


@pytest.mark.parametrize("name", ["smoke/A-arasfsr", "smoke/C-liif", "smoke/P-arasfsr", "smoke/B-sparnet", "smoke/R-arasfsr"])
def test_device_batches_match_the_workers_path(faces, name):
    """Same LR inputs bit for bit (bicubic on the device; NN-JPEG, the mixture and realistic by the
    loader from the decoded faces), and every queried target is the Pillow-made HR pixel."""
    files, decoded = faces
    for step in (0, 3):
        cfg, steps, dev = _workers_and_device(files, decoded, name, step)
        ref = steps[step]
        assert torch.equal(ref["lr"], dev["lr"])
        lr, hrs, qs = steps.plan(step)
        for i in range(steps.per_rank):
            img = augment(steps.source(step * steps.batch_size + i), cfg["data"],
                          np.random.default_rng([3, step * steps.batch_size + i, 3]))
            hr = np.asarray(img.resize((hrs[i], hrs[i]), Image.BICUBIC))
            keep = dev["mask"][i] if "mask" in dev else torch.ones(dev["coord"].shape[1], dtype=torch.bool)
            c = dev["coord"][i][keep]
            yy = ((c[:, 0] + 1) * hrs[i] / 2).floor().long()
            xx = ((c[:, 1] + 1) * hrs[i] / 2).floor().long()
            assert int(keep.sum()) == qs[i] and len(set((yy * 1000 + xx).tolist())) == qs[i]  # distinct pixels
            assert torch.equal(dev["gt"][i][keep], torch.from_numpy(hr[yy, xx]).float() / 255)
            assert torch.allclose(dev["ratio"][i], torch.tensor([lr / hrs[i]] * 2))


def test_device_batches_are_a_pure_function_of_seed_and_step_and_split_over_ranks(faces):
    files, decoded = faces
    a = _workers_and_device(files, decoded, "smoke/P-arasfsr", 5, batch_size=4)[2]
    b = _workers_and_device(files, decoded, "smoke/P-arasfsr", 5, batch_size=4)[2]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    halves = [_workers_and_device(files, decoded, "smoke/P-arasfsr", 5, batch_size=4, rank=r, world=2)[2]
              for r in (0, 1)]
    assert all(torch.equal(torch.cat([h[k] for h in halves]), a[k]) for k in a)
    c = _workers_and_device(files, decoded, "smoke/P-arasfsr", 5, batch_size=4, seed=4)[2]
    assert not torch.equal(a["coord"], c["coord"])


def test_every_face_gets_its_own_queries(faces):
    """Protocol P: a 12-px HR face no longer cuts its batch-mates to 144 queries."""
    files, decoded = faces
    for pipeline in ("workers", "device"):
        cfg = load_config("cpu/P-arasfsr", ["data.lr_size=[12, 12]", "data.scale=[1, 8]"])
        steps = StepBatches(files, cfg["data"], 8, seed=1)
        step = next(s for s in range(50) if min(steps.plan(s)[1]) ** 2 < 1024 <= max(steps.plan(s)[1]) ** 2)
        _, hrs, qs = steps.plan(step)
        assert qs == [min(h * h, 1024) for h in hrs]
        batch = steps[step] if pipeline == "workers" else DeviceBatches(decoded, cfg["data"], 1, 8)(StepPlans(steps, decoded)[step])
        assert batch["coord"].shape[1] == 1024 and batch["mask"].sum(1).tolist() == qs


def test_masked_loss_counts_only_real_queries():
    pred, target = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    target[1, 2:] = 100.0  # padding: must not count
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    assert torch.isclose(pixel_loss(pred, target, "l1", mask=mask), torch.tensor(2.0))
    assert torch.isclose(pixel_loss(pred, torch.ones(2, 4, 3), "charbonnier", 0.0), torch.tensor(2.0))
    assert torch.isclose(pixel_loss(pred, target, "mse", mask=mask), torch.tensor(4.0))  # (2 x 1)^2


def test_the_mse_loss_trains_to_the_mean_and_l1_to_the_median():
    """train.loss: mse minimises the squared error that PSNR measures (the mean of what a
    pixel may be); L1 the absolute error (their median)."""
    target = torch.tensor([0.0, 0.0, 0.3]).view(3, 1, 1)
    for kind, best in (("mse", 0.1), ("l1", 0.0)):
        pred = torch.full((1, 1, 1), 0.2, requires_grad=True)
        opt = torch.optim.SGD([pred], lr=0.01)
        for _ in range(400):
            opt.zero_grad()
            pixel_loss(pred.expand(3, 1, 1), target, kind).backward()
            opt.step()
        assert abs(pred.item() - best) < 0.02, (kind, pred.item())


def test_sparnet_recipe_is_applied_and_recorded():
    cfg = load_config("smoke/B-sparnet")
    assert cfg["train"]["loss"] == "l1" and cfg["train"]["lr"] == 2e-4 and cfg["train"]["betas"] == [0.9, 0.99]
    assert cfg["train"]["batch_size"] == 32 and cfg["data"]["sample_q"] is None and cfg["data"]["crop_aug"]
    assert cfg["recipe"]["arch"] == "sparnet" and "L1" in cfg["recipe"]["source"]
    assert load_config("smoke/B-sparnet", ["train.batch_size=4"])["train"]["batch_size"] == 4  # --set wins
    assert load_config("smoke/B-liif")["recipe"] is None and load_config("smoke/B-liif")["train"]["loss"] == "charbonnier"


def test_learning_rate_schedules():
    cfg = {"lr_decay_at": 0.5, "lr_gamma": 0.1, "warmup": 0, "lr_schedule": "step"}
    assert [lr_factor(t, 10, cfg) for t in (0, 4, 5, 9)] == [1.0, 1.0, 0.1, 0.1]
    cos = {**cfg, "lr_schedule": "cosine", "lr_decay_at": 0.0, "lr_gamma": 0.01, "warmup": 4}
    f = [lr_factor(t, 100, cos) for t in range(100)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0 and abs(f[-1] - 0.01) < 1e-3
    assert all(a >= b for a, b in zip(f[4:], f[5:]))


def test_ema_follows_the_weights_with_a_warm_up():
    model = torch.nn.Linear(2, 2)
    ema = make_ema(model)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.weight.clone()
    update_ema(ema, model, 0.999, step=0)  # warm-up: d = 0.1, the average moves 90 % of the way
    assert torch.allclose(ema.weight, before + 0.9)


def test_decoded_faces_are_cached_and_memory_mapped(face_data, tmp_path, monkeypatch):
    """Decoded once per machine: a second process maps the same file (one copy in memory for
    runs side by side); a changed face makes a new cache."""
    import arasfsr.training.device_data as dd

    monkeypatch.setenv(dd.CACHE_ENV, str(tmp_path / "cache"))
    src = list_images(face_data / "utkface" / "train")[:4]
    files = []
    for i, f in enumerate(src):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(f.read_bytes())
    first = decode_faces(files)
    assert isinstance(first, np.memmap) and dd.decoded_cache_path(files).is_file()
    dd._DECODED.clear()  # as in a new process
    again = decode_faces(files)
    assert isinstance(again, np.memmap) and np.array_equal(np.asarray(again), np.asarray(first))
    assert np.array_equal(np.asarray(again), np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]))
    before = dd.decoded_cache_path(files)
    Image.open(src[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(files[0])
    assert dd.decoded_cache_path(files) != before
    dd._DECODED.clear()
    assert np.array_equal(np.asarray(decode_faces(files))[0], np.asarray(Image.open(files[0]).convert("RGB")))


def test_flat_queries_weigh_more_and_the_loss_is_their_weighted_mean():
    """train.flat_weight: queries on the flat half of the input weigh 1 + flat_weight."""
    from arasfsr.training.module import flat_query_weights

    lr = torch.zeros(1, 3, 16, 16)
    lr[..., 8:] = torch.rand(1, 3, 16, 8, generator=torch.Generator().manual_seed(0))  # right half: texture
    centres = -1 + 1 / 16 + torch.arange(16) / 8  # pixel centres of the 16 px grid
    left = torch.stack(torch.meshgrid(centres, centres[:6], indexing="ij"), -1).view(-1, 2)
    right = torch.stack(torch.meshgrid(centres, centres[10:], indexing="ij"), -1).view(-1, 2)
    coord = torch.cat([left, right])[None]  # (y, x) queries, as the data paths make them
    weight = flat_query_weights(lr, coord, 3.0)
    assert torch.all(weight[0, :len(left)] == 4.0) and torch.all(weight[0, len(left):] == 1.0)
    # Padded queries do not move the median, and the loss is the weighted mean of the real ones.
    mask = torch.ones(1, coord.shape[1], dtype=torch.bool)
    padded = torch.cat([coord, torch.zeros(1, 40, 2)], 1)
    mask = torch.cat([mask, torch.zeros(1, 40, dtype=torch.bool)], 1)
    assert torch.equal(flat_query_weights(lr, padded, 3.0, mask)[:, :coord.shape[1]], weight)
    pred, target = torch.zeros(1, coord.shape[1], 3), torch.zeros(1, coord.shape[1], 3)
    target[0, :len(left)] = 0.5  # error 1.0 (x2 scale) on the flat queries, 0 elsewhere
    loss = pixel_loss(pred, target, "l1", weight=weight)
    assert torch.isclose(loss, torch.tensor(4.0 * len(left) / (4.0 * len(left) + len(right))))
