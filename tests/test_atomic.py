import os

import pytest

import arasfsr.checkpoint as checkpoint
from arasfsr.atomic import TempFileError, atomic_write
from arasfsr.models import create_model


def usual_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@pytest.fixture
def model():
    return create_model("arasfsr", encoder_args={"n_resblocks": 1, "n_feats": 8}, hidden=[16],
                        frequency_width=8, frequency_blocks=1)


def test_checkpoint_gets_the_usual_permissions(tmp_path, model):
    path = checkpoint.save_checkpoint(model, tmp_path / "m.safetensors", card={"description": "m"})
    # Written through mkstemp (0600), yet readable by others like any exported file.
    assert path.stat().st_mode & 0o777 == usual_mode()
    assert path.with_suffix(".json").stat().st_mode & 0o777 == usual_mode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_failed_checkpoint_write_leaves_old_file_and_no_temporary(tmp_path, model, monkeypatch):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"old")

    def half_written(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("safetensors.torch.save_file", half_written)  # what save_checkpoint calls
    with pytest.raises(OSError, match="No space"):
        checkpoint.save_checkpoint(model, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_atomic_write_interrupted_and_unwritable(tmp_path):
    target = tmp_path / "a.txt"

    def interrupted(tmp):
        open(tmp, "w").write("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupted)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TempFileError):
        atomic_write(tmp_path / "missing" / "a.txt", lambda tmp: None)
