"""Training batches: foreground oversampling, patch sizes, prefetching that changes nothing."""

import numpy as np
import torch

from napari_volseg.engine.patches import batch_size, effective_patch, sample_patch
from napari_volseg.engine.patches import train_case as _train_case
from napari_volseg.preprocess import Prepared


def test_foreground_oversampling_gives_at_least_a_third_foreground_patches():
    label = np.zeros((40, 80, 80), np.uint8)
    label[18:22, 38:42, 38:42] = 1
    prepared = Prepared(image=np.random.rand(1, 40, 80, 80).astype(np.float32), label=label, box=(), source_shape=())
    case = _train_case("x", prepared, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(300):
        _, lab = sample_patch(case, (16, 32, 32), rng, foreground=rng.random() < 0.33)
        hits += bool(lab.any())
    assert hits / 300 >= 0.3


def test_patch_shrinks_to_small_volumes_and_stays_divisible():
    assert effective_patch((64, 64, 64), [(20, 50, 33), (18, 40, 30), (36, 52, 40)], 16) == (16, 48, 32)
    # smaller than one divisor everywhere: the longest axis gets two, so the bottleneck is not 1 voxel
    assert effective_patch((64, 64, 64), [(10, 12, 14)], 16) == (16, 16, 32)
    assert effective_patch((64, 64, 64), [(200, 200, 200)], 16) == (64, 64, 64)


def test_prefetching_batch_stream_yields_exactly_the_plain_batches():
    """Loader threads (the GPU path) must not change what is trained on: a batch is a function of its step."""
    from napari_volseg.engine.patches import BatchStream

    rng = np.random.default_rng(0)
    label = np.zeros((24, 40, 40), np.uint8)
    label[8:16, 10:30, 12:28] = 1
    prepared = Prepared(image=rng.normal(size=(1, 24, 40, 40)).astype(np.float32), label=label, box=(), source_shape=())
    cases = [_train_case("a", prepared, rng)]
    kwargs = {"batch_size": 2, "fg_fraction": 0.5, "seed": 3, "augment": True}
    plain = BatchStream(cases, (16, 32, 32), **kwargs)
    ahead = BatchStream(cases, (16, 32, 32), workers=2, **kwargs)
    try:
        for step in [0, 1, 2, 3, 7, 8]:  # including a jump, as after a resume
            (xa, ya), (xb, yb) = plain.get(step), ahead.get(step)
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
            assert xa.shape == (2, 1, 16, 32, 32) and ya.dtype == torch.int64
        assert not torch.equal(plain.get(0)[0], plain.get(1)[0])
    finally:
        ahead.close()


def test_small_patches_come_in_larger_batches():
    assert batch_size(2, (64, 64, 64), 2 * 64**3) == 2
    assert batch_size(2, (32, 48, 32), 2 * 64**3) == 10  # hippocampus-sized patches
    assert batch_size(2, (16, 16, 16), 2 * 64**3) == 16  # capped
    assert batch_size(3, (32, 48, 32), None) == 3


def test_strong_intensity_augmentation_changes_images_not_labels_and_repeats_by_seed():
    from napari_volseg.engine.patches import Augmenter

    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 16, 32, 32)).astype(np.float32)
    label = (rng.random((16, 32, 32)) > 0.5).astype(np.uint8)
    basic, strong = Augmenter((16, 32, 32)), Augmenter((16, 32, 32), intensity="strong")
    changed = 0
    for seed in range(12):
        xb, yb = basic(image, label, np.random.default_rng(seed))
        xs, ys = strong(image, label, np.random.default_rng(seed))
        assert torch.equal(yb, ys)  # intensity transforms leave the labels alone
        assert torch.equal(xs, strong(image, label, np.random.default_rng(seed))[0])  # same seed, same patch
        assert torch.isfinite(xs).all() and xs.dtype == torch.float32
        changed += not torch.allclose(xb, xs)
    assert changed >= 4  # blur, low resolution and gamma fire on roughly 2 patches in 3


def test_augmented_batches_are_plain_tensors():
    """MONAI's RandAffined returns MetaTensors; a batch of them would run every op of the net through MONAI's
    ``__torch_function__`` and would not take the CPU instance norm's own backward (``models.norm``)."""
    from napari_volseg.engine.patches import BatchStream

    rng = np.random.default_rng(0)
    label = np.zeros((24, 40, 40), np.uint8)
    label[8:16, 10:30, 12:28] = 1
    prepared = Prepared(image=rng.normal(size=(1, 24, 40, 40)).astype(np.float32), label=label, box=(), source_shape=())
    stream = BatchStream(
        [_train_case("a", prepared, rng)], (16, 32, 32), batch_size=2, fg_fraction=0.5, seed=0, augment=True
    )
    for step in range(4):
        x, y = stream.get(step)
        assert type(x) is torch.Tensor and type(y) is torch.Tensor
