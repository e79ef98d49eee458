"""Classify 3D digits: show a test volume, its predicted class with probability bars, and train in a worker.

Self-contained (it needs no other widget): a preset and epochs, Start / Stop with a live loss and test-accuracy
chart, a checkpoint to load, a test digit to show as an Image layer, and a table of class probabilities for the
selected 16^3 Image layer. Loading, training and predicting run in ``thread_worker``\\ s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image
from napari.qt.threading import thread_worker
from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_volseg import events as ev
from napari_volseg import paths
from napari_volseg._napari import workers
from napari_volseg._napari.loading import session_for
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.plot import TrainingPlot
from napari_volseg.classify import digits3d
from napari_volseg.classify.config import CLASSIFY_PRESETS
from napari_volseg.classify.data import DIGIT_CLASSES
from napari_volseg.engine import naming
from napari_volseg.errors import VolsegError

SAMPLE_META = "volseg-classify"


class ClassifyWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.presets = dict(CLASSIFY_PRESETS)
        self.classifier = None
        self.trainer = None
        self.worker = None
        self.predicting = None
        self._bar = None

        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems(list(self.presets))
        self.preset.setCurrentText("fast-vgg13-3d")
        self.epochs = QSpinBox(minimum=1, maximum=1000)
        form.addRow("preset", self.preset)
        form.addRow("epochs", self.epochs)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Train")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.load_button = QPushButton("Load…")
        for button in (self.start_button, self.stop_button, self.load_button):
            buttons.addWidget(button)
        self.plot = TrainingPlot(metric="test accuracy")
        self.plot.follow_theme(napari_viewer)
        self.status = QLabel("no model: train one or load a checkpoint")
        self.status.setWordWrap(True)

        sample_row = QHBoxLayout()
        # the test set's size as a constant: digits3d.split() reads scikit-learn's digits (about a second)
        self.sample = QSpinBox(minimum=0, maximum=len(DIGIT_CLASSES) * digits3d.TEST_PER_CLASS - 1)
        self.show_button = QPushButton("Show test digit")
        self.classify_button = QPushButton("Classify")
        sample_row.addWidget(self.sample)
        sample_row.addWidget(self.show_button)
        sample_row.addWidget(self.classify_button)
        self.classify_button.setEnabled(False), self.classify_button.setToolTip("no classifier yet: train or load one")
        self.result = QLabel("")
        self.table = QTableWidget(len(DIGIT_CLASSES), 2)
        self.table.setHorizontalHeaderLabels(["class", "probability"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.bars = []
        for row, name in enumerate(DIGIT_CLASSES):
            self.table.setItem(row, 0, QTableWidgetItem(name))
            bar = QProgressBar(minimum=0, maximum=1000)
            bar.setFormat("-")
            self.table.setCellWidget(row, 1, bar)
            self.bars.append(bar)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.plot)
        layout.addWidget(self.status)
        layout.addLayout(sample_row)
        layout.addWidget(self.result)
        layout.addWidget(self.table)

        self.preset.currentTextChanged.connect(self._show_preset)
        self._show_preset(self.preset.currentText())
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        self.load_button.clicked.connect(self._load_dialog)
        self.show_button.clicked.connect(self.show_sample)
        self.classify_button.clicked.connect(self.classify)

    def _show_preset(self, name: str) -> None:
        self.epochs.setValue(self.presets[name].epochs)

    def current_preset(self):
        return self.presets[self.preset.currentText()].with_overrides(epochs=self.epochs.value())

    # -- sample and prediction --------------------------------------------------------------------

    def show_sample(self):
        """Add (or replace) the chosen test digit as an Image layer, then classify it if a model is loaded."""
        position, seed = self.sample.value(), self.current_preset().seed
        connect = {"returned": self._add_sample, "errored": notify_error}
        return thread_worker(digits3d.test_sample, connect=connect)(position, 0, seed)

    def _add_sample(self, sample) -> None:
        for layer in [la for la in self.viewer.layers if SAMPLE_META in la.metadata]:
            self.viewer.layers.remove(layer)
        label = sample.classes[int(sample.labels[0])]
        name = f"test digit {self.sample.value()} (true class {label})"
        layer = self.viewer.add_image(
            sample.volumes[0], name=name, colormap="gray", contrast_limits=(0.0, 1.0), metadata={SAMPLE_META: label}
        )
        layer.rendering = "mip"
        self.viewer.dims.ndisplay = 3  # a rotated digit reads in 3D, rarely in one slice
        self.viewer.layers.selection.active = layer
        if self.classifier is not None:
            self.classify()

    def _target(self) -> Image | None:
        layer = self.viewer.layers.selection.active
        if isinstance(layer, Image) and np.ndim(layer.data) == 3:
            return layer
        return next((la for la in self.viewer.layers if SAMPLE_META in la.metadata), None)

    def classify(self):
        """Classify the selected 3D Image layer (else the test digit shown) in a worker."""
        if self.classifier is None:
            notify_error("no classifier yet: train one or load a checkpoint")
            return None
        layer = self._target()
        if layer is None:
            notify_error("show a test digit or select a 16x16x16 Image layer first")
            return None
        self._clear_prediction(f"classifying {layer.name}…")  # an earlier answer must not stand for this layer's
        connect = {
            "returned": self._show_prediction,
            "errored": lambda exc: (notify_error(exc), self._clear_prediction(f"{layer.name}: not classified")),
            "finished": lambda: setattr(self, "predicting", None),
        }
        self.predicting = thread_worker(self.classifier.predict, connect=connect)(np.asarray(layer.data), layer.name)
        return self.predicting

    def _clear_prediction(self, text: str) -> None:
        for bar in self.bars:
            bar.setValue(0)
            bar.setFormat("")
        self.result.setText(text)

    def _show_prediction(self, prediction) -> None:
        for row, name in enumerate(DIGIT_CLASSES):
            p = prediction.probabilities.get(name, 0.0)
            self.bars[row].setValue(round(p * 1000))
            self.bars[row].setFormat(f"{p:.1%}")
        best = prediction.probabilities[prediction.label]
        self.result.setText(f"{prediction.source}: predicted {prediction.label} ({best:.1%})")

    # -- training ---------------------------------------------------------------------------------

    def start(self, out: Path | None = None, source=None):
        """Train the chosen preset in a worker (``source``: other volumes than the preset's 3D digits)."""
        if self.worker is not None:
            return None
        from napari_volseg.classify.train import ClassifierTrainer

        preset = self.current_preset()
        out = Path(out) if out else naming.run_path(paths.runs_dir(), f"classifier-{preset.name}")
        try:
            self.trainer = trainer = ClassifierTrainer(preset, out, source)
        except VolsegError as exc:
            notify_error(exc)
            return None

        @background
        def work():
            yield from trainer.run()

        self.plot.clear()
        self.worker = work()
        self.worker.volseg_stop = trainer.stop
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText("making the 3D digits…")
        return workers.start(
            self.session,
            self.worker,
            owner=self,
            what="training the classifier",
            on_yield=lambda event, _bar: self._on_event(event),
            on_done=self._idle,
        )

    def stop(self) -> None:
        if self.trainer is not None:
            self.trainer.stop()
            self.status.setText("stopping after this step…")

    def _on_event(self, event) -> None:
        if isinstance(event, ev.Started):
            self._bar = progress(total=event.total_steps, desc="training the classifier")
            self.status.setText(
                f"training on {event.device}: {len(event.train_cases)} train / {len(event.val_cases)} test volumes, "
                f"batches of {event.batch_size}"
            )
        elif isinstance(event, ev.Step):
            self.plot.add_loss(event.step, event.loss)
            self._bar.update(event.step - self._bar.n)
        elif isinstance(event, ev.Validated):
            self.plot.add_dice(event.step, event.mean)
            self.status.setText(f"epoch {event.epoch + 1}: test accuracy {event.mean:.3f}")
        elif isinstance(event, ev.Failed):
            notify_error(event.message)
            self.status.setText(f"failed: {event.message}")
        elif isinstance(event, ev.Finished):
            how = "stopped" if event.stopped else "finished"
            self.status.setText(f"{how} at step {event.step}: test accuracy {event.accuracy:.3f}")
            show_info(f"classifier training {how}: test accuracy {event.accuracy:.3f}")
            self.use_checkpoint(event.best_path)

    def _idle(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.worker = None
        self.trainer = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)

    # -- checkpoints ------------------------------------------------------------------------------

    def use_checkpoint(self, path: str | Path):
        """Load a classifier checkpoint in a worker and classify with it from then on."""
        from napari_volseg.classify.predict import Classifier

        return thread_worker(Classifier, connect={"returned": self._set_classifier, "errored": notify_error})(
            Path(path)
        )

    def _set_classifier(self, classifier) -> None:
        self.classifier = classifier
        self.classify_button.setEnabled(True), self.classify_button.setToolTip("")
        c = classifier.checkpoint
        self.status.setText(f"model: {c.path.name} ({c.preset.get('model', '?')}, test accuracy {c.accuracy:.3f})")
        if self._target() is not None:
            self.classify()

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a classifier checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.use_checkpoint(path)
