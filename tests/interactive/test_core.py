"""The interactive core without Qt: prompt checks, regions, encoding, the simulated annotator, the session."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_volseg.interactive import InteractiveSession, PromptError, open_interactive
from napari_volseg.interactive import prompts as p
from napari_volseg.interactive import simulate as sim
from napari_volseg.interactive.data import Structure, sample
from napari_volseg.interactive.encode import CHANNELS, encode
from napari_volseg.interactive.region import Region, choose, from_grid, grown
from napari_volseg.interactive.session import local_change

SHAPE = (40, 64, 64)
SPACING = (2.0, 1.0, 1.0)


def ball(shape, centre, radius_mm, spacing=SPACING) -> np.ndarray:
    grids = np.meshgrid(*(np.arange(s) * sp for s, sp in zip(shape, spacing, strict=True)), indexing="ij")
    return sum((g - c * sp) ** 2 for g, c, sp in zip(grids, centre, spacing, strict=True)) <= radius_mm**2


class BallSegmenter:
    """A stand-in model: the object is a ball of 10 mm around the mean positive click, minus 4 mm around negatives;
    a box gives the ball at the box's centre. Records every region it was asked about."""

    name, grid, min_extent_mm, max_extent_mm = "balls", 32, 24.0, 80.0

    def __init__(self, radius_mm: float = 10.0):
        self.radius, self.regions = radius_mm, []

    def segment(self, image, region, prompts, previous):
        self.regions.append(region)
        full = np.zeros(image.shape, bool)
        pos = [q.zyx for q in prompts if isinstance(q, p.Click) and q.positive]
        boxes = [q for q in prompts if isinstance(q, p.Box)]
        if boxes:
            b = boxes[-1]
            pos.append((b.z, (b.yx[0] + b.yx[2]) / 2, (b.yx[1] + b.yx[3]) / 2))
        if pos:
            full |= ball(image.shape, np.mean(pos, axis=0), self.radius)
        for q in prompts:
            if isinstance(q, p.Click) and not q.positive:
                full &= ~ball(image.shape, q.zyx, 4.0)
        return full[region.slices]


def session(segmenter=None) -> InteractiveSession:
    rng = np.random.default_rng(0)
    return InteractiveSession(segmenter or BallSegmenter(), rng.normal(size=SHAPE).astype(np.float32), SPACING)


# -- prompts ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda s: s.click((40, 10, 10)), "outside the scan"),
        (lambda s: s.click((-1, 10, 10)), "outside the scan"),
        (lambda s: s.click((1, 2)), "three numbers"),
        (lambda s: s.click(("a", 2, 3)), "three numbers"),
        (lambda s: s.box(5, (10, 10, 10, 30)), "at least 3 x 3"),
        (lambda s: s.box(5, (10, 10, 70, 30)), "outside the scan"),
        (lambda s: s.scribble(np.zeros((4, 4, 4), bool)), "paint on the scan's grid"),
        (lambda s: s.scribble(np.zeros(SHAPE, bool)), "empty"),
        (lambda s: s.undo(), "nothing to undo"),
        (lambda s: s.start_from(np.zeros((3, 3, 3))), "scan's grid"),
    ],
)
def test_bad_prompts_are_one_line_and_keep_the_mask(call, words):
    s = session()
    s.click((20, 32, 32))
    before = s.result()
    if "undo" in words:
        s = session()
        before = s.result()
    with pytest.raises(PromptError, match=words) as info:
        call(s)
    assert "\n" not in str(info.value)
    assert np.array_equal(s.result(), before)


def test_read_script_refuses_what_it_cannot_replay(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"click": [1, 2, 3], "box": [1, 2, 3, 4]}]')
    with pytest.raises(PromptError, match="exactly one of"):
        p.read_script(bad)
    bad.write_text("not json")
    with pytest.raises(PromptError, match="not JSON"):
        p.read_script(bad)
    bad.write_text("[]")
    with pytest.raises(PromptError, match="holds no prompts"):
        p.read_script(bad)
    good = tmp_path / "good.json"
    good.write_text('{"prompts": [{"click": [1, 2, 3]}, {"undo": true}]}')
    assert len(p.read_script(good)) == 2


# -- regions and encoding ---------------------------------------------------------------------------------------------


def test_region_is_a_cube_in_mm_around_the_prompts_within_its_limits():
    shape, spacing = (100, 200, 200), (2.0, 1.0, 1.0)
    one = choose(shape, spacing, np.array([[50, 100, 100]]), grid=64, min_extent_mm=48.0, max_extent_mm=160.0)
    assert one.shape == (24, 48, 48)  # 48 mm in every direction, whatever the voxel size
    assert all(a <= c < b for a, c, b in zip(one.lo, (50, 100, 100), one.hi, strict=True))
    far = np.array([[10, 20, 20], [90, 180, 180]])
    capped = choose(shape, spacing, far, grid=64, min_extent_mm=48.0, max_extent_mm=100.0, focus_zyx=far[1])
    assert capped.shape == (50, 100, 100)
    assert all(a <= c < b for a, c, b in zip(capped.lo, far[1], capped.hi, strict=True))  # centred on the newest
    edge = choose(shape, spacing, np.array([[0, 0, 0]]), grid=64, min_extent_mm=48.0, max_extent_mm=160.0)
    assert edge.lo == (0, 0, 0) and edge.shape == (24, 48, 48)  # shifted inside the scan, not cut
    assert grown(one, shape).shape == (36, 72, 72)


def test_encode_puts_each_prompt_in_its_own_channel_where_it_lies():
    image = np.zeros((40, 80, 80), np.float32)
    region = Region((0, 0, 0), (40, 80, 80), (20, 40, 40))
    click = p.Click((20, 40, 40), True)
    neg = p.Click((10, 10, 10), False)
    box = p.Box(30, (20, 20, 40, 60))
    previous = np.zeros(image.shape, bool)
    previous[10:20, 40:60, 40:60] = True
    x = encode(image, region, [click, neg, box], previous)
    assert x.shape == (len(CHANNELS), 20, 40, 40)
    pos = np.argwhere(x[1].numpy() > 0).mean(axis=0)
    assert np.allclose(pos, region.to_grid_coords(click.points())[0], atol=0.6)
    assert x[2, 5, 5, 5] == 1 and x[1, 5, 5, 5] == 0
    box_slices = np.nonzero(x[3].numpy().any(axis=(1, 2)))[0]
    assert list(box_slices) == [15]  # slice 30 of 40 on a 20-slice grid
    assert x[3, 15, 10:21, 10:31].all() and not x[3, 15, 25, 35]
    assert abs(float(x[4].sum()) - previous.sum() / 8) < 0.05 * previous.sum() / 8


def test_from_grid_gives_the_mask_back_on_the_regions_voxels():
    region = Region((0, 0, 0), (10, 20, 20), (10, 10, 10))
    logits = torch.zeros((2, 10, 10, 10))
    logits[1, :, :5] = 5.0
    logits[0, :, 5:] = 5.0
    mask = from_grid(logits, region) > 0
    assert mask.shape == (10, 20, 20)
    assert mask[:, :9].all() and not mask[:, 11:].any()


# -- the simulated annotator ------------------------------------------------------------------------------------------


def test_simulated_clicks_go_to_the_centre_of_the_largest_error():
    truth = ball(SHAPE, (20, 32, 32), 12.0)
    first = sim.first_click(truth, SPACING)
    assert np.allclose(first.zyx, (20, 32, 32), atol=1) and first.positive
    missed = truth.copy()
    missed[:, :, 32:] = False  # the right half missed
    click = sim.next_click(missed, truth, SPACING)
    assert click.positive and click.zyx[2] > 32 and truth[click.zyx]
    extra = truth | ball(SHAPE, (20, 10, 10), 5.0)
    wrong = sim.next_click(extra, truth, SPACING)
    assert not wrong.positive and not truth[wrong.zyx] and extra[wrong.zyx]
    assert sim.next_click(truth, truth, SPACING) is None
    assert sim.clicks_to_reach([0.5, 0.86, 0.95], 0.85) == 2
    assert sim.clicks_to_reach([0.5, 0.6], 0.85) == 20


# -- the session ------------------------------------------------------------------------------------------------------


def test_clicks_answer_with_the_whole_object_and_undo_steps_back():
    s = session()
    first = s.click((20, 32, 32))
    assert first.dtype == np.uint8 and first.shape == SHAPE
    truth = ball(SHAPE, (20, 32, 32), 10.0)
    assert sim.dice(first, truth) > 0.99
    assert s.counts == {"clicks": 1, "boxes": 0, "scribbles": 0}
    cut = s.click((20, 32, 40), positive=False)
    assert cut.sum() < first.sum() and not cut[20, 32, 40]
    assert np.array_equal(s.undo(), first)
    assert s.undo().sum() == 0
    s.box(20, (25, 25, 39, 39))
    assert s.counts["boxes"] == 1 and s.result()[20, 32, 32]
    assert s.reset().sum() == 0 and np.array_equal(s.undo(), s.mask.astype(np.uint8))


def test_an_object_larger_than_the_view_grows_the_region():
    segmenter = BallSegmenter(radius_mm=20.0)  # 40 mm across, the model's first view 24 mm
    s = session(segmenter)
    mask = s.click((20, 32, 32))
    assert s.last.passes > 1 and segmenter.regions[-1].shape > segmenter.regions[0].shape
    assert sim.dice(mask, ball(SHAPE, (20, 32, 32), 20.0)) > 0.95


def test_a_corrective_click_changes_only_what_it_touches():
    before = np.zeros((20, 20, 30), bool)
    before[5:15, 5:15, 5:25] = True
    after = before.copy()
    after[5:15, 5:15, 24] = False  # a border moved far from the click (the coarser grid)
    after[2:5, 8:12, 8:12] = True  # the part the click asked for
    click = p.Click((3, 10, 10), True)
    region = Region((0, 0, 0), (20, 20, 30), (20, 20, 30))
    merged = local_change(before, after, click, region, (1.0, 1.0, 1.0))
    assert merged[3, 10, 10] and merged[5:15, 5:15, 24].all()
    assert np.array_equal(local_change(np.zeros_like(before), after, click, region, (1, 1, 1)), after)


def test_start_from_corrects_a_given_mask():
    s = session()
    start = ball(SHAPE, (20, 32, 32), 10.0) & (np.arange(SHAPE[2]) < 32)[None, None, :]
    assert np.array_equal(s.start_from(start), start.astype(np.uint8))
    fixed = s.click((20, 32, 38))  # in the missed half
    assert fixed.sum() > start.sum() and fixed[20, 32, 38]


def test_open_interactive_reads_a_scan_and_refuses_a_task_model(tmp_path, tiny_checkpoint):
    from napari_volseg.engine.checkpoint import CheckpointError
    from napari_volseg.io import volumes
    from napari_volseg.io.geometry import geometry_from_spacing

    image = np.random.default_rng(0).normal(size=(8, 16, 16)).astype(np.float32)
    path = volumes.write_image(tmp_path / "scan.nii.gz", image, geometry_from_spacing(image.shape, (3.0, 1.0, 1.0)))
    s = open_interactive("random-walker", path)
    assert s.shape == (8, 16, 16) and s.spacing == pytest.approx((3.0, 1.0, 1.0)) and s.geometry is not None
    with pytest.raises(CheckpointError, match="not an interactive one"):
        open_interactive(tiny_checkpoint, path)
    with pytest.raises(PromptError, match="3 channels: choose one"):
        open_interactive("random-walker", np.zeros((3, 4, 4, 4)))


def test_the_random_walker_finds_a_bright_ball_from_clicks():
    rng = np.random.default_rng(1)
    truth = ball(SHAPE, (20, 32, 32), 12.0)
    image = truth * 2.0 + rng.normal(scale=0.3, size=SHAPE)
    s = open_interactive("random-walker", image.astype(np.float32), SPACING)
    click = sim.first_click(truth, SPACING)
    for _ in range(3):
        s.click(click.zyx, click.positive)
        click = sim.next_click(s.mask, truth, SPACING) or click
    assert sim.dice(s.mask, truth) > 0.8


# -- training data ----------------------------------------------------------------------------------------------------


def test_samples_show_the_prompts_where_the_object_is():
    truth = ball(SHAPE, (20, 32, 32), 12.0)
    image = (truth * 2.0 + np.random.default_rng(0).normal(scale=0.3, size=SHAPE)).astype(np.float32)
    structure = Structure("ball", "case", image, truth, SPACING)
    rng = np.random.default_rng(0)
    for _ in range(12):
        x, y = sample(structure, rng, grid=32, min_extent_mm=(30.0, 60.0), max_extent_mm=100.0)
        assert x.shape == (5, 32, 32, 32) and y.shape == (32, 32, 32) and y.any()
        positive, negative = x[1].numpy() > 0, x[2].numpy() > 0
        if positive.any():  # positive prompts lie mostly in the object, negative ones mostly outside
            assert y.numpy()[positive].mean() > 0.5
        if negative.any():
            assert y.numpy()[negative].mean() < 0.5
        assert abs(float(x[0].mean())) < 0.1 and abs(float(x[0].std()) - 1) < 0.1


def test_merge_never_overwrites_a_finished_object():
    from napari_volseg.interactive.session import merge

    labels = np.zeros((4, 8, 8), np.uint8)
    labels[:, :4, :4] = 2  # a finished object of class 2
    before = np.zeros(labels.shape, bool)
    before[:, 6:, 6:] = True
    labels[before] = 1
    after = np.zeros(labels.shape, bool)
    after[:, 2:6, 2:6] = True  # overlaps the finished object; leaves the old corner
    merged = merge(labels, labels, before, after, 1)
    assert (merged[:, :4, :4] == 2).all()  # untouched
    assert (merged[:, 4:6, 4:6] == 1).all() and (merged[:, 6:, 6:] == 0).all()
    assert (labels[:, 6:, 6:] == 1).all()  # a copy
    sparse = np.full((4, 8, 8), 255, np.uint8)  # annotated from scratch: everything unlabelled
    sparse[0] = 2
    nothing = np.zeros(sparse.shape, bool)
    took = merge(sparse, sparse, nothing, after, 1, free=(0, 255))
    assert (took[1:, 2:6, 2:6] == 1).all() and (took[0] == 2).all()
    back = merge(took, sparse, after, nothing, 1, free=(0, 255))
    assert np.array_equal(back, sparse)  # left voxels are unlabelled again, not background


def test_a_promptable_net_starts_answering_as_its_task_model_does():
    from napari_volseg.interactive.train import seed_from_segmenter
    from napari_volseg.models import build_model
    from napari_volseg.models.registry import model_config

    torch.manual_seed(0)
    task_net = build_model(model_config("cpu-lean", in_channels=1, num_classes=2)).eval()
    prompt_net = build_model(model_config("cpu-lean", in_channels=5, num_classes=2)).eval()
    copied = seed_from_segmenter(prompt_net, task_net.state_dict())
    assert "down.0.0.weight" in copied and len(copied) == len(task_net.state_dict())
    image = torch.randn(1, 1, 32, 32, 32)
    prompts = torch.cat([image, torch.zeros(1, 4, 32, 32, 32)], dim=1)
    with torch.no_grad():
        assert torch.allclose(task_net(image), prompt_net(prompts), atol=1e-5)
    three = build_model(model_config("cpu-lean", in_channels=1, num_classes=3)).state_dict()
    assert "head.weight" not in seed_from_segmenter(prompt_net, three)  # a head for other classes starts fresh
