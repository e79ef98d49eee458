"""Preprocess: the plan settings of the session's preset (a form built from ``PlanSettings``; Train trains with
them), a preview of the current case on the plan's grid, and filling the cache. Planning reads the task's
statistics, so every step runs in a worker."""

from __future__ import annotations

import dataclasses

from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_volseg import planning, preprocess
from napari_volseg._napari import workers
from napari_volseg._napari.layers import META_KEY
from napari_volseg._napari.loading import add_layer, case_layers, refill, session_for
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import compact, listen
from napari_volseg._napari.widgets.forms import DataclassForm
from napari_volseg.cache import PreparedCache
from napari_volseg.config import PlanSettings, Preset
from napari_volseg.errors import VolsegError

BASIC = ("resample", "spacing", "max_voxels", "shape", "crop")
LABELS = {
    "resample": "resample to",
    "spacing": "spacing z, y, x mm",
    "max_voxels": "voxel budget",
    "shape": "shape z, y, x",
    "crop": "crop to body",
    "roi_margin_mm": "ROI margin mm",
}
NONE_TEXT = {"max_voxels": "no limit"}
DEFAULT_SHAPE = (128, 128, 128)
"""The fixed shape first offered when "resample" becomes "shape" (the seed report's heart experiments)."""
CHOICES = {"resample": ("spacing", "shape")}


def _grid(shape, spacing) -> str:
    return " × ".join(map(str, shape)) + " voxels at " + " × ".join(f"{s:.2f}" for s in spacing) + " mm"


class PreprocessWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.worker = None
        top = QFormLayout()
        self.preset = compact(QComboBox())
        self.preset.addItems(list(self.session.presets))
        top.addRow("from preset", self.preset)
        self.form = DataclassForm(PlanSettings, BASIC, labels=LABELS, none_text=NONE_TEXT, choices=CHOICES)
        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview current case")
        self.run_button = QPushButton("Preprocess task")
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.run_button)
        self.status = QLabel("The plan set here is the one Train trains with.")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.preset.currentTextChanged.connect(self.session.choose_preset)
        listen(self, self.session.preset_changed, self._show_preset)
        self._show_preset(self.session.preset)
        self.form.changed.connect(self._changed)
        self._enable_fields()
        self.preview_button.clicked.connect(self.preview)
        self.run_button.clicked.connect(self.run)

    def _changed(self) -> None:
        self._enable_fields()
        shape = self.form.fields["shape"]
        if self.form.fields["resample"].get() == "shape" and shape.get() is None:
            # a fixed shape with none set raised SettingsError in this slot (a traceback); start from the seed's 128³
            shape.set(DEFAULT_SHAPE)
            self.status.setText(
                "every volume is resized to {} × {} × {} (z, y, x): set the shape you need".format(*DEFAULT_SHAPE)
            )
        try:
            settings = self.settings()
        except VolsegError as exc:  # keep the last valid plan; say what is wrong
            self.status.setText(str(exc))
            return
        self.session.set_plan(settings)

    def _enable_fields(self) -> None:
        """A fixed shape ignores spacing, voxel budget and cascade; a spacing plan ignores the shape."""
        by_shape = self.form.fields["resample"].get() == "shape"
        for name, field in self.form.fields.items():
            if name != "resample" and name != "crop":
                field.widget.enabled = (name == "shape") == by_shape

    def _show_preset(self, preset: Preset) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentText(preset.name)
        self.preset.blockSignals(False)
        self.form.show_values(preset.plan)

    def settings(self) -> PlanSettings:
        settings = self.form.apply(self.session.preset.plan)
        if settings.resample != "shape":
            return dataclasses.replace(settings, shape=None)
        return settings

    def planned_preset(self) -> Preset:
        """The session's preset with the plan settings shown; :func:`~napari_volseg.planning.plan_run` plans it
        from its training split as the trainer does (reading the task's statistics: only in a worker)."""
        return dataclasses.replace(self.session.preset, plan=self.settings())

    def preview(self):
        """Add the current case on the plan's grid as a layer (scaled to the plan's spacing)."""
        task, case_id = self.session.task, self.session.case_id
        if task is None or case_id is None:
            notify_error("open a case first (Data tab)")
            return None
        preset = self.planned_preset()

        @background
        def work():
            planned = planning.plan_run(task, preset)
            plan, cascade = planned.plan, planned.cascade
            image, label = task.case(case_id).load()
            return plan, cascade, image, preprocess.apply(plan, image, label)

        self.preview_button.setEnabled(False)
        self.status.setText(f"planning and preparing {case_id}…")
        return workers.start(
            self.session,
            work(),
            owner=self,
            on_return=lambda result: self._show_preview(case_id, *result),
            on_done=lambda: self.preview_button.setEnabled(True),
        )

    def _task_root(self) -> str | None:
        """The open task's folder: a preview is a task case's layer, which opening another case removes."""
        return str(self.session.task.root) if self.session.task is not None else None

    def _show_preview(self, case_id, plan, cascade, image, prepared) -> None:
        spacing = plan.target_spacing or tuple(
            s * n / m for s, n, m in zip(image.spacing, prepared.crop_shape, prepared.image.shape[1:], strict=True)
        )
        origin = [
            o + a * s for o, (a, _), s in zip(image.geometry.origin_zyx, prepared.box, image.spacing, strict=True)
        ]
        data = prepared.image[0]
        kwargs = {
            "name": f"{case_id} preprocessed",
            "scale": spacing,
            "translate": origin,
            "metadata": {META_KEY: {"case": case_id, "role": "preview", "task": self._task_root()}},
            "contrast_limits": (float(data.min()), float(max(data.max(), data.min() + 1e-3))),
        }
        kwargs["contrast_limits_range"] = kwargs["contrast_limits"]
        old = case_layers(self.viewer, case_id).get("preview")
        if old is not None:
            refill(old, data, kwargs)
        else:
            add_layer(self.viewer, data, {**kwargs, "colormap": "magma", "opacity": 0.7}, "image")
        grid = _grid(prepared.image.shape[1:], spacing)
        if cascade:
            self.status.setText(
                f"{case_id} on the cascade's coarse locator grid (stage 1 of 2): {grid}. The scans do not fit the "
                f"voxel budget at their own spacing, so a locator finds the organ on this grid and the main network "
                f"then trains inside that box at up to full resolution (plan {plan.hash})."
            )
        else:
            self.status.setText(f"{case_id} as the network sees it: {grid} (plan {plan.hash}).")

    def run(self):
        task = self.session.task
        if task is None:
            notify_error("open a task first (Data tab)")
            return None
        if self.worker is not None:
            return None
        preset = self.planned_preset()

        @background
        def work():
            planned = planning.plan_run(task, preset)
            plan, cascade = planned.plan, planned.cascade
            cache = PreparedCache(plan)
            yield from cache.fill(task.cases)
            return cache, cascade

        self.worker = work()
        self.status.setText("planning…")
        workers.start(
            self.session,
            self.worker,
            desc="preprocessing",
            total=len(task.cases),
            owner=self,
            on_yield=lambda _, bar: bar.update(1),
            on_return=self._done,
            on_error=lambda exc: notify_error(exc if isinstance(exc, VolsegError) else f"failed: {exc}"),
            on_done=lambda: setattr(self, "worker", None),
        )
        return self.worker

    def _done(self, result) -> None:
        cache, cascade = result
        text = f"plan {cache.plan.hash}: {cache.misses} preprocessed, {cache.hits} already cached in {cache.folder}"
        if cascade:  # the voxel budget and the main grid apply to the regions of interest, cut when training starts
            text = (
                f"cascade stage 1 of 2, the locator's coarse grid: {text}. The main network's regions of interest "
                "(where the voxel budget applies) are cut and cached when training starts."
            )
        self.status.setText(text)
