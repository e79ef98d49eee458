import numpy as np
from conftest import TINY_CT

from napari_volseg.io import decathlon, synthetic


def test_same_seed_same_volumes_other_seed_other_volumes():
    a_img, a_lab = synthetic.ct_case(5, TINY_CT)
    b_img, b_lab = synthetic.ct_case(5, TINY_CT)
    c_img, c_lab = synthetic.ct_case(6, TINY_CT)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert not np.array_equal(a_lab, c_lab)


def test_ct_phantom_is_hounsfield_with_a_spleen_inside_the_body():
    image, label = synthetic.ct_case(0)
    assert image.dtype == np.int16 and image.shape == (32, 128, 128)
    assert image.min() <= -900 and image.max() >= 500  # air and bone
    spleen_hu = image[label > 0].mean()
    assert 90 < spleen_hu < 150
    fraction = label.mean()
    assert 0.005 < fraction < 0.1
    # the spleen lies on the patient's left (high x in LPS+)
    xs = np.nonzero(label)[2]
    assert xs.mean() > image.shape[2] / 2


def test_mri_phantom_has_bright_atrium_and_uint16():
    image, label = synthetic.mri_case(0)
    assert image.dtype == np.uint16 and label.any()
    assert image[label > 0].mean() > 2 * image[label == 0].mean()


def test_written_task_is_msd_format_and_anisotropic(tmp_path):
    root = synthetic.write_task(tmp_path / "Task09_Synth", cases=3, kind="ct", test_cases=1)
    task = decathlon.load_task(root)
    assert len(task.cases) == 3 and len(task.test_cases) == 1 and task.kind == "ct"
    image, label = task.cases[1].load()
    np.testing.assert_allclose(image.spacing, (5.0, 0.8, 0.8), rtol=1e-5)
    expected_img, expected_lab = synthetic.ct_case(1)
    np.testing.assert_array_equal(image.data, expected_img)
    np.testing.assert_array_equal(label.data, expected_lab)
