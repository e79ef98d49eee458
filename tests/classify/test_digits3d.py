"""The 3D digits: 16^3 volumes in 0-1, a fixed split, deterministic by seed, and the voxelisation's geometry."""

import numpy as np
import pytest

from napari_volseg.classify import digits3d
from napari_volseg.errors import VolsegError


def test_split_is_fixed_disjoint_and_balanced():
    train, test = digits3d.split()
    assert len(train) == 1497 and len(test) == 300 and not set(train) & set(test)
    _, target = digits3d._digits()
    assert np.bincount(target[test]).tolist() == [30] * 10


def test_volumes_are_16_cubed_in_0_1_labelled_and_deterministic_by_seed():
    a = digits3d.make_set("test", copies=2, limit=10)
    assert a.volumes.shape == (20, 16, 16, 16) and a.volumes.dtype == np.float32
    assert a.volumes.min() == 0.0 and a.volumes.max() <= 1.0 and (a.volumes.max(axis=(1, 2, 3)) > 0.5).all()
    assert a.ids[:2] == (f"digit{digits3d.split()[1][0]:04d}-0", f"digit{digits3d.split()[1][0]:04d}-1")
    np.testing.assert_array_equal(a.labels[::2], a.labels[1::2])
    assert not np.array_equal(a.volumes[0], a.volumes[1])  # two copies, two thicknesses and rotations
    b = digits3d.make_set("test", copies=2, limit=10)
    np.testing.assert_array_equal(a.volumes, b.volumes)
    other_seed = digits3d.make_set("test", copies=2, limit=10, seed=1)
    assert not np.array_equal(a.volumes, other_seed.volumes)
    np.testing.assert_array_equal(a.labels, other_seed.labels)
    # a smaller set is the head of a larger one, and a single test sample is the same volume
    np.testing.assert_array_equal(digits3d.make_set("test", copies=2, limit=4).volumes, a.volumes[:8])
    np.testing.assert_array_equal(digits3d.test_sample(3, copy=1).volumes[0], a.volumes[7])
    with pytest.raises(VolsegError, match="test digit 300 does not exist"):
        digits3d.test_sample(300)


def test_a_solid_square_voxelises_to_its_extruded_volume():
    image = np.zeros((8, 8), dtype=np.float32)
    image[2:6, 2:6] = 1.0  # 4 x 4 pixels of ink
    rng = np.random.default_rng(0)
    thickness = np.random.default_rng(0).uniform(*digits3d.THICKNESS)
    volume = digits3d.digit_volume(image, rng)
    expected = 16 * thickness * digits3d.VOXELS_PER_PIXEL**3  # voxels the solid fills
    assert volume.sum() == pytest.approx(expected, rel=0.1)
    assert volume.max() == 1.0  # the inside is full
    centre = np.array(np.unravel_index(np.argmax(volume), volume.shape))
    assert np.all(np.abs(centre - 7.5) < 4)  # centred in the grid
    assert digits3d.digit_volume(np.zeros((8, 8), np.float32), rng).sum() == 0.0


def test_sources_repeat_or_redraw_the_training_volumes():
    fixed = digits3d.DigitsSource(train_copies=1, test_copies=1, limit=5)
    assert fixed.train(3) is fixed.train(0) and len(fixed.test()) == 5
    fresh = digits3d.DigitsSource(train_copies=2, test_copies=1, fresh=True, limit=5)
    first, second = fresh.train(0), fresh.train(1)
    assert len(first) == len(second) == 10 and not np.array_equal(first.volumes, second.volumes)
    np.testing.assert_array_equal(first.volumes, digits3d.make_set("train", 2, limit=5).volumes)
    assert second.ids[0].endswith("-2")
    assert "5 train digits x 2 copies (fresh copies every epoch)" in fresh.description
