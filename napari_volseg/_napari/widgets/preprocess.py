"""Preprocess: choose a plan (a preset's, or target spacing / fixed shape), preview it, cache the task."""

from __future__ import annotations

import dataclasses

from napari.qt.threading import thread_worker
from napari.utils import progress
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_volseg import paths, planning, preprocess
from napari_volseg._napari.layers import META_KEY
from napari_volseg._napari.state import session_for
from napari_volseg._napari.widgets.common import notify_error
from napari_volseg.cache import PreparedCache
from napari_volseg.engine.config import PlanSettings, list_presets
from napari_volseg.errors import VolsegError
from napari_volseg.planning import Plan


class PreprocessWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.presets = list_presets()
        self.worker = None
        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems(list(self.presets))
        self.resample = QComboBox()
        self.resample.addItems(["spacing", "shape"])
        self.spacing = [QDoubleSpinBox(decimals=2, minimum=0.0, maximum=20.0, singleStep=0.25) for _ in range(3)]
        for box in self.spacing:
            box.setSpecialValueText("auto")
        self.max_voxels = QSpinBox(minimum=0, maximum=100_000_000, singleStep=250_000)
        self.max_voxels.setSpecialValueText("no limit")
        self.shape = [QSpinBox(minimum=16, maximum=512, singleStep=16) for _ in range(3)]
        self.crop = QCheckBox("crop to the body / nonzero box")
        row_spacing, row_shape = QHBoxLayout(), QHBoxLayout()
        for box in self.spacing:
            row_spacing.addWidget(box)
        for box in self.shape:
            row_shape.addWidget(box)
        form.addRow("from preset", self.preset)
        form.addRow("resample to", self.resample)
        form.addRow("spacing z, y, x mm", row_spacing)
        form.addRow("voxel budget", self.max_voxels)
        form.addRow("shape z, y, x", row_shape)
        form.addRow("", self.crop)
        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview current case")
        self.run_button = QPushButton("Preprocess task")
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.run_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.preset.currentTextChanged.connect(self._show_preset)
        self.preset.setCurrentText(paths.DEFAULT_PRESET)
        self._show_preset(paths.DEFAULT_PRESET)
        self.preview_button.clicked.connect(self.preview)
        self.run_button.clicked.connect(self.run)
        self.session.task_changed.connect(lambda task: self._show_cached())

    def _show_preset(self, name: str) -> None:
        p = self.presets[name].plan
        self.resample.setCurrentText(p.resample)
        for box, value in zip(self.spacing, p.spacing or (0.0, 0.0, 0.0), strict=True):
            box.setValue(float(value))
        self.max_voxels.setValue(int(p.max_voxels or 0))
        for box, value in zip(self.shape, p.shape or (64, 128, 128), strict=True):
            box.setValue(int(value))
        self.crop.setChecked(p.crop)

    def settings(self) -> PlanSettings:
        spacing = tuple(b.value() for b in self.spacing)
        base = self.presets[self.preset.currentText()].plan
        return dataclasses.replace(
            base,
            resample=self.resample.currentText(),
            spacing=spacing if all(spacing) else None,
            shape=tuple(b.value() for b in self.shape) if self.resample.currentText() == "shape" else None,
            max_voxels=self.max_voxels.value() or None,
            crop=self.crop.isChecked(),
        )

    def plan(self) -> Plan:
        """The plan of the settings shown, from the preset's training split (as the trainer plans);
        a cascade preset's whole volumes are planned for its locator (the main net sees regions of interest)."""
        if self.session.task is None:
            raise VolsegError("open a task first (Data widget)")
        preset = dataclasses.replace(self.presets[self.preset.currentText()], plan=self.settings())
        return planning.plan_task(self.session.task, preset)[0]

    def _show_cached(self) -> None:
        task = self.session.task
        if task is None:
            return
        try:
            cache = PreparedCache(self.plan())
        except VolsegError:
            return
        cached = sum(cache.is_cached(c) for c in task.cases)
        self.status.setText(f"plan {cache.plan.hash}: {cached} of {len(task.cases)} cases cached")

    def preview(self) -> None:
        """Add the current case on the plan's grid as a layer (scaled to the plan's spacing)."""
        task, case_id = self.session.task, self.session.case_id
        if task is None or case_id is None:
            notify_error("open a case first (Data widget)")
            return
        try:
            plan = self.plan()
            image, label = task.case(case_id).load()
            prepared = preprocess.apply(plan, image, label)
        except VolsegError as exc:
            notify_error(exc)
            return
        spacing = plan.target_spacing or tuple(
            s * n / m for s, n, m in zip(image.spacing, prepared.crop_shape, prepared.image.shape[1:], strict=True)
        )
        origin = [
            o + a * s for o, (a, _), s in zip(image.geometry.origin_zyx, prepared.box, image.spacing, strict=True)
        ]
        name = f"{case_id} preprocessed"
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        self.viewer.add_image(
            prepared.image[0],
            name=name,
            scale=spacing,
            translate=origin,
            colormap="magma",
            metadata={META_KEY: {"case": case_id, "role": "preview"}},
            visible=True,
        )
        self.status.setText(
            f"{case_id}: {tuple(prepared.image.shape[1:])} voxels at "
            + " × ".join(f"{s:.2f}" for s in spacing)
            + " mm (plan "
            + plan.hash
            + ")"
        )

    def run(self):
        task = self.session.task
        if task is None or self.worker is not None:
            if task is None:
                notify_error("open a task first (Data widget)")
            return None
        try:
            plan = self.plan()
        except VolsegError as exc:
            notify_error(exc)
            return None
        cache = PreparedCache(plan)

        @thread_worker
        def work():
            yield from cache.fill(task.cases)

        bar = progress(total=len(task.cases), desc="preprocessing")
        self.worker = work()
        self.worker.yielded.connect(lambda _: bar.update(1))
        self.worker.errored.connect(notify_error)
        self.worker.finished.connect(lambda: (bar.close(), self._done(cache)))
        self.session.track(self.worker)
        self.worker.start()
        return self.worker

    def _done(self, cache) -> None:
        self.worker = None
        self.status.setText(
            f"plan {cache.plan.hash}: {cache.misses} preprocessed, {cache.hits} already cached in {cache.folder}"
        )
