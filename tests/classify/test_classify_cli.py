"""`volseg classify train | predict` as a user types them."""

import numpy as np

from napari_volseg import cli
from napari_volseg.classify import checkpoint, digits3d
from napari_volseg.classify.config import CLASSIFY_PRESETS


def test_train_then_predict_files(tiny_preset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CLASSIFY_PRESETS, "tiny", tiny_preset)
    model = tmp_path / "digits.safetensors"
    assert cli.main(["classify", "train", "--preset", "tiny", "--out", str(model), "--epochs", "1"]) == 0
    out = capsys.readouterr()
    assert "test accuracy" in out.out and str(model) in out.out and "batches of 8, Adam 0.01" in out.err
    sample = digits3d.test_sample(0)
    np.save(tmp_path / "a.npy", sample.volumes[0])
    np.save(tmp_path / "b.npy", digits3d.test_sample(1).volumes[0])
    assert (
        cli.main(["classify", "predict", "--model", str(model), str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{tmp_path / 'a.npy'}: ")
    probs = [float(item.split("=")[1]) for item in lines[0].split()[3:]]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 0.01
    label = lines[0].split(": ")[1].split()[0]
    assert float(lines[0].split(f" {label}=")[1].split()[0]) == max(probs)


def test_user_errors_are_one_line_and_exit_1(tmp_path, capsys):
    assert cli.main(["classify", "train", "--preset", "nope", "--out", str(tmp_path / "c.safetensors")]) == 1
    assert capsys.readouterr().err.strip() == (
        "volseg: error: unknown classifier training preset 'nope'; choose from seed-vgg13-3d, fast-vgg13-3d"
    )
    assert cli.main(["classify", "predict", "--model", str(tmp_path / "none.safetensors"), "x.npy"]) == 1
    assert capsys.readouterr().err.startswith("volseg: error: no checkpoint at")
    assert cli.main(["classify", "train", "--out", str(tmp_path / "c"), "--data", str(tmp_path / "no.h5")]) == 1
    assert "no 3D MNIST file" in capsys.readouterr().err


def test_train_on_a_3d_mnist_file(tiny_preset, tmp_path, monkeypatch, capsys):
    from test_mnist3d import _write

    monkeypatch.setitem(CLASSIFY_PRESETS, "tiny", tiny_preset)
    data = _write(tmp_path / "full_dataset_vectors.h5", n_train=10, n_test=4)
    model = tmp_path / "mnist.safetensors"
    argv = ["classify", "train", "--preset", "tiny", "--out", str(model), "--epochs", "1", "--data", str(data)]
    assert cli.main(argv) == 0
    assert "on 3D MNIST from full_dataset_vectors.h5: 10 train, 4 test volumes" in capsys.readouterr().err
    assert checkpoint.load(model).data.startswith("3D MNIST from full_dataset_vectors.h5")
