"""Inference: mirroring only along trained axes, the checkpoint's settings, files written in their own geometry."""

from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch

from napari_volseg.config import InferConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine.infer import window_probabilities
from napari_volseg.io import decathlon


class Ramp(torch.nn.Module):
    """Logits that depend only on position: foreground rises along x. Counts its calls."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(divisor=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        ramp = torch.linspace(-3, 3, x.shape[-1]).expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([torch.zeros_like(ramp), ramp], dim=1)


def run(tta, axes):
    model = Ramp()
    image = np.zeros((1, 8, 8, 8), np.float32)
    probs = window_probabilities(model, image, (8, 8, 8), InferConfig(tta=tta), torch.device("cpu"), axes)
    return probs, model.calls


def test_tta_averages_over_the_trained_mirror_axes_only():
    plain, calls = run(False, (2,))
    assert calls == 1 and plain[1, 0, 0, -1] > 0.9 and plain[1, 0, 0, 0] < 0.1
    mirrored, calls = run(True, (2,))
    assert calls == 2
    torch.testing.assert_close(mirrored[1], torch.full_like(mirrored[1], 0.5))  # x-mirrored ramp averages out
    _, calls = run(True, (1, 2))
    assert calls == 4  # every combination of the two mirrorings
    untrained, calls = run(True, ())
    assert calls == 1  # a net never trained mirrored is not shown mirrored anatomy
    torch.testing.assert_close(untrained, plain)


def test_predictor_keeps_the_presets_settings_unless_overridden(tmp_path):
    from napari_volseg.config import InferConfig, Preset, TrainConfig
    from napari_volseg.engine import checkpoint as ckpt
    from napari_volseg.engine.infer import Predictor
    from napari_volseg.models import build_model, model_config
    from napari_volseg.planning import Plan

    net = build_model(model_config("cpu-lean", 1, 2))
    preset = Preset(
        name="m", infer=InferConfig(overlap=0.5, tta=True), train=TrainConfig(patch_size=(16, 32, 32), mirror_axes=(2,))
    )
    path = ckpt.save(tmp_path / "m.safetensors", net, Plan(target_spacing=(1, 1, 1)), {0: "bg", 1: "fg"}, preset=preset)
    p = Predictor(path)
    assert (p.config.overlap, p.config.tta, p.mirror_axes, p.roi) == (0.5, True, (2,), (16, 32, 32))
    q = Predictor(path, tta=False, overlap=None)  # None: not given on the command line
    assert (q.config.overlap, q.config.tta) == (0.5, False)


def test_prediction_on_a_real_heart_case_has_the_source_shape_and_affine(heart_dir, tmp_path):
    from napari_volseg import planning
    from napari_volseg.cohort.run import predict_files
    from napari_volseg.config import PlanSettings, Preset, TrainConfig
    from napari_volseg.models import build_model, model_config

    task = decathlon.load_task(heart_dir)
    plan = planning.make_plan(PlanSettings(max_voxels=400_000), planning.statistics(task, task.cases[:2]))
    model = build_model(model_config("cpu-lean"))
    preset = Preset(name="untrained", train=TrainConfig(patch_size=(32, 64, 64)))
    path = ckpt.save(tmp_path / "untrained.safetensors", model, plan, task.labels, preset=preset)
    source = task.cases[0].image_path
    [progress] = list(predict_files(path, [source], tmp_path / "out"))
    assert progress.done == 1
    written = nib.load(str(tmp_path / "out" / "la_003.nii.gz"))
    original = nib.load(str(source))
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    assert (int(written.header["qform_code"]), int(written.header["sform_code"])) == (
        int(original.header["qform_code"]),
        int(original.header["sform_code"]),
    )


@pytest.mark.parametrize("device", ["cuda", "mps", "tpu"])
def test_asking_for_an_absent_device_is_one_line(device):
    from napari_volseg.engine.device import resolve_device
    from napari_volseg.errors import VolsegError

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(VolsegError):
        resolve_device(device)
