"""Train / load a model: the session's preset (its plan set in Preprocess), a form built from ``TrainConfig``,
training in a worker with a live chart and time left, Stop that leaves a usable model."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from napari.utils import progress
from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_volseg import events as ev
from napari_volseg import paths
from napari_volseg._napari.loading import session_for
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import compact, listen
from napari_volseg._napari.widgets.forms import DataclassForm
from napari_volseg._napari.widgets.model_chooser import ModelChooser
from napari_volseg._napari.widgets.plot import TrainingPlot
from napari_volseg._napari.widgets.run_status import RunStatus
from napari_volseg.config import VAL_FRACTION, Preset, TrainConfig
from napari_volseg.engine import checkpoint as ckpt
from napari_volseg.engine import naming
from napari_volseg.engine.device import available_devices
from napari_volseg.errors import VolsegError
from napari_volseg.models import MODEL_PRESETS
from napari_volseg.outputs import atomic_write, check_writable
from napari_volseg.zoo.warm import SCRATCH, candidates, default_start, start_from

BASIC = ("minutes", "epochs", "patch_size", "lr", "loss", "device")
LABELS = {"alpha": "alpha (Dice weight)", "patch_size": "patch z, y, x", "lr": "learning rate", "minutes": "minutes"}
NONE_TEXT = {
    "minutes": "no limit",
    "batch_voxels": "off",
    "val_cases": f"auto ({VAL_FRACTION:.0%})",
    "threads": "all cores",
}
CHOICES = {"device": tuple(available_devices()), "mirror_axes": (0, 1, 2)}
"""Where the form offers other choices than the setting's own (config.py): this machine's devices, the axes."""


def describe_plan(preset: Preset, edited: bool) -> str:
    p = preset.plan
    if p.resample == "shape" and p.shape:
        grid = "resized to " + " × ".join(map(str, p.shape))
    else:
        grid = "spacing " + (" × ".join(f"{s:g}" for s in p.spacing) + " mm" if p.spacing else "of the task")
        if p.max_voxels:
            grid += f", ≤ {p.max_voxels / 1e6:g} M voxels"
        if p.cascade:
            grid += ", cascade when a scan does not fit"
    return f"plan: {grid}" + (" (set in Preprocess)" if edited else f" ({preset.name})")


@dataclass
class Training:
    """A training run the session owns (``session.training``): whichever Train dock shows it."""

    trainer: object
    worker: object
    status: RunStatus
    events: list = field(default_factory=list)
    """The events so far that the chart draws (steps, validations, stage starts)."""


def record(session, active: Training, event) -> None:
    """The run's side of an event, once whatever docks show it: its status, the model, the one notification."""
    run = active.status
    if isinstance(event, (ev.Started, ev.Step, ev.Validated)):
        active.events.append(event)
    if isinstance(event, ev.Started):
        run.started(event)
    elif isinstance(event, ev.Step):
        run.step(event)
    elif isinstance(event, ev.Validated):
        run.validated(event)
    elif isinstance(event, ev.CheckpointSaved):
        run.saved(event)
        if event.kind == "best":
            session.set_checkpoint(event.path)
    elif isinstance(event, ev.Failed):
        notify_error(event.message)
    elif isinstance(event, ev.Finished):
        model = run.model_after(event)
        kept = session.checkpoint if event.best_path is None else None  # the model in use, chosen before or during
        if kept is not None:  # stopped before any validation: unvalidated weights do not replace the chosen model
            session.set_checkpoint(kept)
        elif model is not None:
            session.set_checkpoint(model)
        run.active = False
        summary = run.finished_summary(event)
        if kept is not None and model is not None:
            summary += f"; not validated: {Path(kept).stem} stays in use"
        show_info(summary)


class TrainWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.trainer = None
        self.worker = None
        self._bar = None

        top = QHBoxLayout()
        self.preset = compact(QComboBox())
        self.preset.addItems(list(self.session.presets))
        self.preset.setToolTip("a named set of plan and training settings (napari_volseg/presets)")
        self.model = compact(QComboBox())
        self.model.addItems(list(MODEL_PRESETS))
        self.model.setToolTip("the network: seed-net1 / seed-net2 (the seed report's), cpu-lean (fast on a CPU)")
        for combo in (self.preset, self.model):  # both on one row inside a 430 px dock (no sideways scrolling)
            combo.setMinimumContentsLength(3)
        top.addWidget(QLabel("preset"))
        top.addWidget(self.preset, 1)
        top.addWidget(QLabel("network"))
        top.addWidget(self.model, 1)
        warm_row = QHBoxLayout()
        self.start_from = compact(QComboBox())
        self.start_from.setMinimumContentsLength(3)
        self.start_from.setToolTip(
            "a zoo model whose weights the network starts from (a warm start: useful after a minute, not ten), or "
            "scratch; offered where the model reads the task's channels with this network"
        )
        warm_row.addWidget(QLabel("start from"))
        warm_row.addWidget(self.start_from, 1)
        self.form = DataclassForm(TrainConfig, BASIC, labels=LABELS, none_text=NONE_TEXT, choices=CHOICES)
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)
        self.settings = QCollapsible("Settings")  # folds away while a run shows its chart
        self.settings.addWidget(self.form)
        self.settings.addWidget(self.plan_label)
        self.settings.expand(animate=False)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.setToolTip("end at the next step; the latest weights become the model")
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("save a copy of the current model's checkpoint")
        buttons.addWidget(self.save_button)
        self.chooser = ModelChooser(self.session)  # the model Stop and Finish leave, or a pretrained / loaded one
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        self.plot = TrainingPlot()
        self.plot.follow_theme(napari_viewer)
        self.run = RunStatus()

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(warm_row)
        layout.addLayout(buttons)  # above the settings: in view at 1366 x 768 with Settings and Advanced unfolded
        layout.addWidget(self.settings)
        models = QHBoxLayout()
        models.addWidget(QLabel("model"))
        models.addWidget(self.chooser, 1)
        layout.addLayout(models)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, 1)

        self.preset.currentTextChanged.connect(self.session.choose_preset)
        listen(self, self.session.preset_changed, self._show_preset)
        listen(self, self.session.plan_changed, self._show_plan)
        self._show_preset(self.session.preset)
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(self.stop)
        self.save_button.clicked.connect(self._save_dialog)
        listen(self, self.session.checkpoint_changed, self._show_checkpoint)
        self._show_checkpoint(self.session.checkpoint)
        listen(self, self.session.task_changed, self._offer_starts)
        self.model.currentTextChanged.connect(self._offer_starts)
        self._offer_starts()
        self._show_checkpoint(self.session.checkpoint)  # a dock opened after a model was chosen names it
        if self.session.training is not None:  # a run started by a Train dock closed since
            self._attach(self.session.training)

    # -- settings <-> config ----------------------------------------------------------------------

    def _show_preset(self, preset: Preset) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentText(preset.name)
        self.preset.blockSignals(False)
        self.model.setCurrentText(preset.model)
        self.form.show_values(preset.train)
        self._show_plan()

    def _show_plan(self, *_) -> None:
        self.plan_label.setText(describe_plan(self.session.preset, self.session.plan_edited))

    def _offer_starts(self, *_) -> None:
        """The warm starts that fit the task and network, the default first (``zoo.warm`` decides)."""
        task = self.session.task
        keep = self.start_from.currentData() if self.start_from.currentIndex() > 0 else None  # chosen, not defaulted
        self.start_from.clear()
        if task is None:
            self.start_from.addItem("scratch (open a task to see the models that fit)", SCRATCH)
            return
        try:
            preset = self.current_preset()
            default = default_start(task, preset)
            names = [c.name for c in candidates(task, preset)]
        except VolsegError:  # a form value out of range: offer scratch until it is fixed
            default, names = SCRATCH, []
        first = f"{default} (default)" if default != SCRATCH else "scratch (default: no model of this modality)"
        self.start_from.addItem(first, default)
        for name in [n for n in names if n != default] + ([SCRATCH] if default != SCRATCH else []):
            self.start_from.addItem(name, name)
        if keep is not None and self.start_from.findData(keep) >= 0:  # the user's choice outlives a refresh
            self.start_from.setCurrentIndex(self.start_from.findData(keep))

    def current_preset(self) -> Preset:
        """The session's preset (with the plan set in Preprocess) and the training settings shown here."""
        preset = self.session.preset
        return dataclasses.replace(preset, model=self.model.currentText(), train=self.form.apply(preset.train))

    # -- training ---------------------------------------------------------------------------------

    def start(self, out: Path | None = None):
        if self.worker is not None:
            return None
        task = self.session.task
        if task is None:
            notify_error("open a task first (Data tab, or drop a task folder on the viewer)")
            return None
        from napari_volseg.engine.trainer import Trainer

        out = Path(out) if out else naming.run_path(paths.runs_dir(), task.name)
        try:  # settings and the output folder are checked here, before the worker starts
            preset = self.current_preset()
            warm, name = start_from(self.start_from.currentData() or SCRATCH, task, preset)
            self.trainer = Trainer(task, preset, out, warm_from=warm, warm_name=name)
        except VolsegError as exc:
            notify_error(exc)
            return None
        trainer = self.trainer
        self.session.set_preset(preset)  # the session's split is now the one the trainer decided

        @background
        def work():
            yield from trainer.run()

        worker = work()
        worker.volseg_stop = trainer.stop
        active = Training(trainer, worker, RunStatus())
        active.status.begin(preset)
        session = self.session
        session.training = active  # the session owns the run: a Train dock opened later shows it, with Stop
        worker.yielded.connect(lambda event: record(session, active, event))
        worker.errored.connect(notify_error)
        worker.finished.connect(lambda: setattr(session, "training", None))
        session.track(worker)
        self.plot.clear()
        self._attach(active)
        self.status.setText("preparing the cases…")
        worker.start()
        return worker

    def _attach(self, active: Training) -> None:
        """Show ``active`` (started here, or by a Train dock closed since): its chart so far, its status, Stop."""
        self.trainer, self.worker, self.run = active.trainer, active.worker, active.status
        self.plot.clear()
        for event in active.events:
            self._chart(event)
        self.status.setText(self.run.step_text() if self.run.steps else "preparing the cases…")
        active.worker.yielded.connect(self._on_event)
        active.worker.finished.connect(self._idle)
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(not active.trainer.stopping)
        self.settings.collapse(animate=False)

    def stop(self) -> None:
        if self.trainer is not None:
            self.trainer.stop()
            self.stop_button.setEnabled(False)
            self.status.setText("stopping after this step…")

    def _chart(self, event) -> None:
        """Draw ``event`` on the chart: a cascade's main net continues the locator's curves after a marked line."""
        run = self.run
        if isinstance(event, ev.Started) and event.stage == "" and run.cascade:
            self.plot.mark(run.offset, "main network")
        elif isinstance(event, ev.Step):
            self.plot.add_loss(run.offset_of(event) + event.step, event.loss)
        elif isinstance(event, ev.Validated):
            self.plot.add_dice(run.offset_of(event) + event.step, event.mean)

    def _on_event(self, event) -> None:
        """The widget's side of an event (:func:`record` has updated the run's status)."""
        run = self.run
        self._chart(event)
        if isinstance(event, ev.Progress):
            self.status.setText(run.preparing(event))
        elif isinstance(event, ev.Started):
            self.plot.set_title(run.stage_title())
            # the text first: making a progress bar runs pending events, and the steps' texts set meanwhile were
            # overwritten by this one when it came after
            self.status.setText(run.started_text(event))
            if self._bar is not None:  # a cascade's main stage follows its locator stage
                self._bar.close()
            self._bar = progress(total=event.total_steps, desc=run.stage_title())
            self._bar.n = event.start_step
        elif isinstance(event, ev.Step):
            self.status.setText(run.step_text())  # first, as above: the bar's update runs pending events too
            if self._bar is not None:
                self._bar.update(event.step - self._bar.n)
        elif isinstance(event, (ev.Validated, ev.CheckpointSaved)):
            self.status.setText(run.step_text())
        elif isinstance(event, ev.Failed):
            self.status.setText(f"failed: {event.message}")
        elif isinstance(event, ev.Finished):
            text = run.finished_text(event)
            in_use = self.session.checkpoint
            if event.best_path is None and in_use is not None and in_use != run.model_after(event):
                text += f" Not validated: {Path(in_use).stem} stays in use."
            self.status.setText(text)
            self._show_outcome()

    def _show_outcome(self) -> None:
        """Scroll the run's outcome into view: with Settings unfolded at 1366 x 768 the status and chart sat below
        the fold after Stop, and only a toast said what was left."""
        from qtpy.QtWidgets import QScrollArea

        area = self.parent()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parent()
        if area is not None:  # once the new text is laid out
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, lambda: area.ensureWidgetVisible(self.status, 0, 0))

    def _idle(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.worker = None
        self.trainer = None
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)  # the settings stay folded: the chart keeps its room (Settings unfolds)
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
        self.save_button.setEnabled(path is not None)  # nothing to save before a model: off, saying why
        self.save_button.setToolTip("save a copy of the current model's checkpoint" if path else "no model yet")
        if path is not None and self.worker is None and not self.run.active:
            self.status.setText(f"model: {Path(path).name} in {Path(path).parent}")

    def _save_dialog(self) -> None:
        if self.session.checkpoint is None:
            notify_error("no model yet: train or load one first")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save checkpoint as", str(Path.home() / self.session.checkpoint.name), "Checkpoints (*.safetensors)"
        )
        if path:
            source = self.session.checkpoint
            try:
                atomic_write(check_writable(path, what="checkpoint"), lambda tmp: shutil.copyfile(source, tmp))
            except VolsegError as exc:
                notify_error(exc)
