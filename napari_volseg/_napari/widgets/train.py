"""Train / load a model: settings from the engine's config, training in a worker, live curves, Stop."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

from napari.qt.threading import thread_worker
from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_volseg import paths
from napari_volseg._napari.state import session_for
from napari_volseg._napari.widgets.common import LivePlot, notify_error
from napari_volseg._napari.widgets.model_chooser import ModelChooser
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import events as ev
from napari_volseg.engine.config import Preset, list_presets
from napari_volseg.engine.infer import available_devices
from napari_volseg.errors import VolsegError
from napari_volseg.losses import LOSSES
from napari_volseg.models import MODEL_PRESETS
from napari_volseg.outputs import atomic_write, check_writable


class TrainWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.presets = list_presets()
        self.trainer = None
        self.worker = None
        self._bar = None

        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems(list(self.presets))
        self.model = QComboBox()
        self.model.addItems(list(MODEL_PRESETS))
        self.loss = QComboBox()
        self.loss.addItems(list(LOSSES))
        self.alpha = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.1)
        self.epochs = QSpinBox(minimum=1, maximum=100000)
        self.minutes = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=10000.0, singleStep=1.0)
        self.minutes.setSpecialValueText("no limit")
        self.patch = [QSpinBox(minimum=16, maximum=512, singleStep=16) for _ in range(3)]
        self.lr = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1.0, singleStep=1e-4)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        patch_row = QHBoxLayout()
        for box in self.patch:
            patch_row.addWidget(box)
        form.addRow("preset", self.preset)
        form.addRow("model", self.model)
        form.addRow("loss", self.loss)
        form.addRow("alpha (Dice weight)", self.alpha)
        form.addRow("epochs", self.epochs)
        form.addRow("minutes", self.minutes)
        form.addRow("patch z, y, x", patch_row)
        form.addRow("learning rate", self.lr)
        form.addRow("device", self.device)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        files = QHBoxLayout()
        self.chooser = ModelChooser(self.session)
        self.save_button = QPushButton("Save checkpoint…")
        files.addWidget(self.chooser, 1)
        files.addWidget(self.save_button)
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        self.plot = LivePlot()

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.plot)
        layout.addWidget(self.status)
        layout.addLayout(files)

        self.preset.currentTextChanged.connect(self._show_preset)
        self.preset.setCurrentText(paths.DEFAULT_PRESET)
        self._show_preset(paths.DEFAULT_PRESET)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save_dialog)
        self.session.checkpoint_changed.connect(self._show_checkpoint)

    # -- settings <-> config ----------------------------------------------------------------------

    def _show_preset(self, name: str) -> None:
        preset = self.presets[name]
        t = preset.train
        self.model.setCurrentText(preset.model)
        self.loss.setCurrentText(t.loss)
        self.alpha.setValue(t.alpha)
        self.epochs.setValue(t.epochs)
        self.minutes.setValue(t.minutes or 0.0)
        for box, value in zip(self.patch, t.patch_size, strict=True):
            box.setValue(int(value))
        self.lr.setValue(t.lr)
        self.device.setCurrentText(t.device if t.device in available_devices() else "auto")

    def current_preset(self) -> Preset:
        """The selected preset with the settings shown in the widget."""
        base = self.presets[self.preset.currentText()]
        preset = base.with_overrides(
            loss=self.loss.currentText(),
            alpha=self.alpha.value(),
            epochs=self.epochs.value(),
            minutes=self.minutes.value() or None,
            patch_size=tuple(b.value() for b in self.patch),
            lr=self.lr.value(),
            device=self.device.currentText(),
        )
        if self.minutes.value() == 0.0:
            preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, minutes=None))
        return dataclasses.replace(preset, model=self.model.currentText())

    # -- training ---------------------------------------------------------------------------------

    def start(self, out: Path | None = None):
        if self.worker is not None:
            return None
        task = self.session.task
        if task is None:
            notify_error("open a task first (Data widget)")
            return None
        from napari_volseg.engine.train import Trainer

        out = Path(out) if out else paths.runs_dir() / f"{task.name}-{time.strftime('%Y%m%d-%H%M%S')}.safetensors"
        try:  # settings and the output folder are checked here, before the worker starts
            preset = self.current_preset()
            self.trainer = Trainer(task, preset, out)
        except VolsegError as exc:
            notify_error(exc)
            return None
        trainer = self.trainer
        self.session.set_preset(preset)  # the session's split is now the one the trainer decided

        @thread_worker
        def work():
            yield from trainer.run()

        self.plot.clear()
        self.worker = work()
        self.worker.volseg_stop = trainer.stop
        self.worker.yielded.connect(self._on_event)
        self.worker.errored.connect(lambda exc: notify_error(exc))
        self.worker.finished.connect(self._idle)
        self.session.track(self.worker)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("preparing…")
        self.worker.start()
        return self.worker

    def stop(self) -> None:
        if self.trainer is not None:
            self.trainer.stop()
            self.status.setText("stopping after this step…")

    def _on_event(self, event) -> None:
        if isinstance(event, ev.Progress):
            self.status.setText(f"preprocessing {event.done}/{event.total}: {event.item}")
        elif isinstance(event, ev.Started):
            if self._bar is not None:  # a cascade's main stage follows its locator stage
                self._bar.close()
                self.plot.clear()
            locator = event.stage == "locator"
            self._bar = progress(total=event.total_steps, desc="training the locator" if locator else "training")
            self._bar.n = event.start_step
            what = "the coarse locator (cascade stage 1 of 2)" if locator else "the network"
            self.status.setText(
                f"training {what} on {event.device}: {len(event.train_cases)} train / "
                f"{len(event.val_cases)} validation cases, batches of {event.batch_size} × "
                + "×".join(map(str, event.patch_size))
            )
        elif isinstance(event, ev.Step):
            self.plot.add_loss(event.step, event.loss)
            if self._bar is not None:
                self._bar.update(event.step - self._bar.n)
        elif isinstance(event, ev.Validated):
            self.plot.add_dice(event.step, event.mean)
            self.status.setText(f"epoch {event.epoch + 1}: validation Dice {event.mean:.3f}")
        elif isinstance(event, ev.CheckpointSaved) and event.kind == "best":
            self.session.set_checkpoint(event.path)
        elif isinstance(event, ev.Failed):
            notify_error(event.message)
            self.status.setText(f"failed: {event.message}")
        elif isinstance(event, ev.Finished):
            how = "stopped" if event.stopped else "finished"
            self.status.setText(f"{how} at step {event.step}; best validation Dice {event.best_dice:.3f}")
            if event.best_path:
                self.session.set_checkpoint(event.best_path)
            show_info(f"training {how}: best validation Dice {event.best_dice:.3f}")

    def _idle(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.worker = None
        self.trainer = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # -- checkpoints ------------------------------------------------------------------------------

    def load_checkpoint(self, path: str | Path) -> bool:
        try:
            loaded = ckpt.load(path)
            loaded.build_model()
        except VolsegError as exc:
            notify_error(exc)
            return False
        self.session.set_checkpoint(Path(path))
        return True

    def _show_checkpoint(self, path) -> None:
        if path is not None and self.worker is None:
            self.status.setText(f"model: {Path(path).name}")

    def _save_dialog(self) -> None:
        if self.session.checkpoint is None:
            notify_error("no model yet: train or load one first")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save checkpoint as", "model.safetensors", "Checkpoints (*.safetensors)"
        )
        if path:
            source = self.session.checkpoint
            try:
                atomic_write(check_writable(path, what="checkpoint"), lambda tmp: shutil.copyfile(source, tmp))
            except VolsegError as exc:
                notify_error(exc)
