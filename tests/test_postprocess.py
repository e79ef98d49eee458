"""Post-processing: largest component per class where validation Dice rises, or (no validation) where every
training label holds the class in one piece; stored in the checkpoint and applied by every prediction."""

from types import SimpleNamespace

import numpy as np
import pytest

from napari_volseg import postprocess as post


def blob(shape, *boxes, label=1):
    out = np.zeros(shape, np.uint8)
    for box in boxes:
        out[tuple(slice(a, b) for a, b in box)] = label
    return out


def test_keep_largest_removes_detached_pieces_of_the_listed_classes_only():
    labels = blob((20, 20, 20), ((2, 10), (2, 10), (2, 10)), ((14, 16), (14, 16), (14, 16)))
    labels[0:2, 18:20, 0:2] = 2  # a small class-2 piece
    labels[5:7, 18:20, 18:20] = 2
    kept = post.keep_largest(labels, (1,))
    assert (kept == 1).sum() == 8**3 and (kept[14:16, 14:16, 14:16] == 0).all()
    assert (kept == 2).sum() == (labels == 2).sum()  # class 2 was not listed
    both = post.keep_largest(labels, (1, 2))
    assert (both == 2).sum() == 8
    diagonal = np.zeros((4, 4, 4), np.uint8)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = 1  # corner-touching voxels are one component (26-connected)
    np.testing.assert_array_equal(post.keep_largest(diagonal, (1,)), diagonal)


def test_decide_keeps_the_step_only_where_validation_dice_rises():
    truth = blob((20, 20, 20), ((2, 10), (2, 10), (2, 10)))
    stray = truth.copy()
    stray[15:18, 15:18, 15:18] = 1  # a detached false positive: removing it helps
    split = truth.copy()
    split[2:10, 5, 2:10] = 0  # the truth itself in two pieces: keeping one hurts
    helps = post.decide([post.class_dice(stray, truth, 2)])
    assert helps.largest_component == (1,) and helps.dice_after[1] == 1.0 > helps.dice_before[1]
    assert helps.rule == "validation" and helps.cases == 1
    hurts = post.decide([post.class_dice(split, split, 2)])
    assert hurts.largest_component == () and hurts.dice_after[1] < hurts.dice_before[1] == 1.0
    assert post.decide([]) == post.PostProcess()


def test_without_validation_the_training_labels_decide():
    one = blob((16, 16, 16), ((2, 8), (2, 8), (2, 8)))
    one[10:12, 10:12, 10:12] = 2  # class 2 one piece here ...
    corner = one.copy()
    corner[8, 8, 8] = 1  # touching class 1 at a corner only: still one 26-connected piece
    split = one.copy()
    split[14:16, 0:2, 0:2] = 2  # ... and in two pieces in another label
    decision = post.from_training_labels([one, corner, split], num_classes=4)
    assert decision.rule == "training labels" and decision.cases == 3
    assert decision.largest_component == (1,) and decision.pieces == {1: 1, 2: 2, 3: 0}  # class 3 never seen: kept off
    assert post.from_training_labels(iter([one]), 2).largest_component == (1,)  # any iterable of labels


def test_decision_round_trips_through_checkpoint_metadata_and_predictor_applies_it(tmp_path):
    import torch

    from napari_volseg.engine import checkpoint as ckpt
    from napari_volseg.engine.infer import Predictor
    from napari_volseg.models import build_model, model_config
    from napari_volseg.planning import Plan

    decision = post.PostProcess((1,), "validation", 3, dice_before={1: 0.8}, dice_after={1: 0.85})
    assert post.from_metadata(post.to_metadata(decision)) == decision
    labels_rule = post.PostProcess((1,), "training labels", 12, pieces={1: 1})
    assert post.from_metadata(post.to_metadata(labels_rule)) == labels_rule
    assert post.from_metadata(None) == post.PostProcess()  # older checkpoints: no post-processing
    net = build_model(model_config("cpu-lean", 1, 2))
    plan = Plan(target_spacing=(1.0, 1.0, 1.0), crop=False)
    path = ckpt.save(tmp_path / "m.safetensors", net, plan, {0: "bg", 1: "fg"}, postprocess=decision)
    assert ckpt.load(path).postprocess == decision
    two_blobs = torch.zeros((2, 16, 16, 16))
    two_blobs[1, 2:8, 2:8, 2:8] = two_blobs[1, 12:14, 12:14, 12:14] = 1.0
    two_blobs[0] = 1.0 - two_blobs[1]
    image = SimpleNamespace(data=np.zeros((16, 16, 16), np.float32), spacing=(1.0, 1.0, 1.0))
    for postprocess, expected in ((True, 6**3), (False, 6**3 + 2**3)):
        predictor = Predictor(path, postprocess=postprocess)
        predictor.predict_prepared = lambda prepared: two_blobs  # the net's output, fixed
        assert int(predictor.predict(image).labels.sum()) == expected
    # a record naming a class the model does not have, or an unknown rule: one CheckpointError line
    for bad in ('{"largest_component": [3], "rule": "validation"}', '{"rule": "vibes"}'):
        meta, tensors = ckpt.read_tensors(path)
        ckpt.write_atomic(tmp_path / "bad.safetensors", tensors, {**meta, post.METADATA_KEY: bad})
        with pytest.raises(ckpt.CheckpointError, match="bad.safetensors: postprocess"):
            ckpt.load(tmp_path / "bad.safetensors")


def test_one_piece_is_decided_by_the_labels_that_hold_foreground():
    from napari_volseg.postprocess import count_pieces, one_piece

    blob = np.zeros((8, 8, 8), bool)
    blob[1:3, 1:3, 1:3] = True
    corner = blob.copy()
    corner[3, 3, 3] = True  # touches the blob at a corner only: still one piece (26-connected)
    two = blob.copy()
    two[6:8, 6:8, 6:8] = True
    assert [count_pieces(m) for m in (blob, corner, two, np.zeros_like(blob))] == [1, 1, 2, 0]
    assert one_piece([1, 1, 0]) is True  # an empty label is no evidence either way
    assert one_piece([1, 2, 1]) is False
    assert one_piece([]) is None and one_piece([0]) is None  # nothing to decide on: the caller keeps what it had


def test_one_piece_of_cases_counts_only_fully_labelled_cases():
    from types import SimpleNamespace

    from napari_volseg.postprocess import one_piece_of_cases

    blob = np.zeros((8, 8, 8), np.uint8)
    blob[1:3, 1:3, 1:3] = 1
    two = blob.copy()
    two[6:8, 6:8, 6:8] = 1

    def case(label, sparse=False):
        return SimpleNamespace(sparse=sparse, load_label=lambda: SimpleNamespace(data=label))

    assert one_piece_of_cases([case(blob), case(two, sparse=True)]) is True  # a sparse label's slices are no evidence
    assert one_piece_of_cases([case(blob), case(two)]) is False
    assert one_piece_of_cases([case(two, sparse=True)]) is None
