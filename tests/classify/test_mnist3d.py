"""The 3D MNIST loader on a small file in the public set's HDF5 layout."""

import h5py
import numpy as np
import pytest

from napari_volseg.classify import mnist3d
from napari_volseg.errors import VolsegError


def _write(path, n_train=5, n_test=3, **override):
    x_train = np.zeros((n_train, 4096), dtype=np.float64)
    x_train[0, np.ravel_multi_index((1, 2, 3), (16, 16, 16))] = 0.75  # voxel x=1, y=2, z=3 of the first volume
    arrays = {
        "X_train": x_train,
        "y_train": np.arange(n_train) % 10,
        "X_test": np.full((n_test, 4096), 0.5),
        "y_test": np.arange(n_test),
    }
    arrays.update(override)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value is not None:
                f.create_dataset(key, data=value)
    return path


def test_rows_become_zyx_volumes_with_labels(tmp_path):
    train, test = mnist3d.load(_write(tmp_path / "full_dataset_vectors.h5"))
    assert train.volumes.shape == (5, 16, 16, 16) and test.volumes.shape == (3, 16, 16, 16)
    assert train.volumes.dtype == np.float32 and train.labels.tolist() == [0, 1, 2, 3, 4]
    assert train.volumes[0, 3, 2, 1] == 0.75 and train.volumes[0].sum() == 0.75
    assert test.labels.tolist() == [0, 1, 2] and train.ids[0] == "train-00000"
    limited = mnist3d.source(tmp_path / "full_dataset_vectors.h5", limit=2)
    assert len(limited.train(0)) == 2 and len(limited.test()) == 2 and limited.train(5) is limited.train(0)
    assert "3D MNIST from full_dataset_vectors.h5: 2 train, 2 test volumes" == limited.description


@pytest.mark.parametrize(
    "override, message",
    [
        ({"y_test": None}, "no y_test"),
        ({"X_train": np.zeros((5, 100))}, r"X_train must be \(N, 4096\)"),
        ({"y_train": np.arange(5) + 8}, "labels outside 0-9"),
    ],
)
def test_malformed_files_are_one_line_errors(tmp_path, override, message):
    with pytest.raises(VolsegError, match=message):
        mnist3d.load(_write(tmp_path / "bad.h5", **override))


def test_missing_and_non_hdf5_files_are_one_line_errors(tmp_path):
    with pytest.raises(VolsegError, match="no 3D MNIST file"):
        mnist3d.load(tmp_path / "absent.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(VolsegError, match="not a readable HDF5 file") as err:
        mnist3d.load(tmp_path / "junk.h5")
    assert "\n" not in str(err.value)
