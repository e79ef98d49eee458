"""Results are as readable as any file the user makes: the umask decides, not mkstemp's 0600 or mkdtemp's 0700."""

import os
import stat

import numpy as np

from napari_volseg.io import volumes
from napari_volseg.io.geometry import geometry_from_spacing
from napari_volseg.outputs import atomic_write


def test_written_files_and_new_tasks_follow_the_umask(tmp_path, tiny_ct_task):
    from napari_volseg.io.new_task import write_task_from_files

    old = os.umask(0o022)
    try:
        text = atomic_write(tmp_path / "a.csv", lambda tmp: open(tmp, "w").write("x"))
        labels = volumes.write_labels(
            tmp_path / "l.nii.gz", np.zeros((2, 3, 4), np.uint8), geometry_from_spacing((2, 3, 4))
        )
        task = write_task_from_files(
            tiny_ct_task / "imagesTr", tmp_path / "Task70_Mine", name="mine", modality="CT", classes="background,spleen"
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(text.stat().st_mode) == 0o644 and stat.S_IMODE(labels.stat().st_mode) == 0o644
    assert stat.S_IMODE(task.stat().st_mode) == 0o755
