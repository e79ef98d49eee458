"""The annotation loop's model versions, in the Annotate tab: the list (double-click one to use it), the minutes
to train, Fine-tune (or, with no model yet, Train from annotations) and Stop. Which run makes the next version is
:func:`~napari_volseg.annotate.finetune.next_version_trainer`'s decision."""

from __future__ import annotations

import math
from pathlib import Path

from qtpy.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QTableWidgetItem, QVBoxLayout, QWidget

from napari_volseg import events as ev
from napari_volseg._napari import workers
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import asked, compact, fit_columns, make_table
from napari_volseg.annotate import sparse, versions
from napari_volseg.config import FinetuneConfig


class VersionsPanel(QWidget):
    def __init__(self, owner):
        super().__init__()
        self.owner = owner
        """The Annotate tab: its session, task, open case and one-job-at-a-time runner."""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        heading = QHBoxLayout()
        heading.addWidget(QLabel("<b>Model versions</b> (double-click to use)"), 1)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip(
            "score every version on the same cases: the labelled ones that none of them trained on"
        )
        heading.addWidget(self.compare_button)
        layout.addLayout(heading)
        self.table = make_table(("version", "Dice", "train cases"), min_height=70)
        self.earlier: list = []
        """The models used in this loop so far (listed while their files exist, to go back to)."""
        self.scores: dict[Path, float] = {}
        """Each version's Dice on the common cases, once compared (:mod:`napari_volseg.annotate.compare`)."""
        self.compared = 0
        row = QHBoxLayout()
        self.minutes = compact(QDoubleSpinBox(decimals=1, minimum=0.1, maximum=600.0, singleStep=1.0, suffix=" min"))
        self.minutes.setValue(FinetuneConfig().minutes)
        self.train_button = QPushButton("Fine-tune")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.minutes.setMinimumWidth(84)  # "10.0 min" whole: the buttons beside it squeezed it to "2.0 mir"
        row.addWidget(self.minutes, 1)
        for w in (self.train_button, self.stop_button):
            row.addWidget(w)
        # the training row above the list: below it, it fell off a 1366 x 768 screen once the ranking and the edit
        # report filled the tab
        layout.addLayout(row)
        layout.addWidget(self.table, 1)
        self.table.cellDoubleClicked.connect(lambda r, c: owner.use_version(Path(self.table.item(r, 0).toolTip())))
        self.train_button.clicked.connect(self.train)
        self.compare_button.clicked.connect(self.compare)

    def show(self, folder: Path, checkpoint) -> None:
        """List the task's versions in ``folder`` and the models used in this loop so far."""
        if checkpoint and checkpoint not in self.earlier:
            self.earlier.append(checkpoint)
        self.fill(versions.versions_for(folder, checkpoint, tuple(self.earlier)), checkpoint)

    def fill(self, listed: list[versions.Version], checkpoint) -> None:
        """List the versions (the one in use marked) and name the training button for what it will do."""
        self.train_button.setText("Fine-tune" if checkpoint else "Train from annotations")
        self.table.setRowCount(len(listed))
        for r, version in enumerate(listed):
            mark = " (in use)" if checkpoint and version.path == Path(checkpoint) else ""
            name = QTableWidgetItem(version.path.stem + mark)
            name.setToolTip(str(version.path))
            score = self.scores.get(version.path)
            if score is not None:  # on the same cases as the others
                dice = QTableWidgetItem(f"{score:.3f}")
                dice.setToolTip(f"mean Dice on the {self.compared} labelled case(s) no version trained on")
            else:
                dice = QTableWidgetItem("-" if math.isnan(version.best_dice) else f"{version.best_dice:.3f} val")
                dice.setToolTip("its own validation Dice (another split for each version): Compare to score all alike")
            for c, item in enumerate((name, dice, QTableWidgetItem(str(version.train_cases)))):
                self.table.setItem(r, c, item)
        fit_columns(self.table)

    def train(self):
        """Fine-tune the model in use on every labelled case (or train a first model from the default
        preset when there is none yet) for the minutes set; the result is the next model version, and
        the open case comes back predicted by it."""
        owner = self.owner
        if not owner._ready(need_model=False):
            return None
        task, checkpoint = owner.session.task, owner.session.checkpoint
        minutes = self.minutes.value()
        out = versions.next_version_path(owner.models_dir())
        trainers: list = []  # made in the worker (loading the checkpoint takes a while); Stop reaches it here

        @background
        def work():
            from napari_volseg.annotate.finetune import next_version_trainer

            trainers.append(next_version_trainer(checkpoint, task, out, minutes))
            yield from trainers[0].run()

        def on_yield(event, bar):
            if isinstance(event, ev.Started):
                bar.total, bar.n = event.total_steps, event.start_step
                owner.status.setText(f"training on {len(event.train_cases)} cases ({minutes:g} min)…")
            elif isinstance(event, ev.Step):
                owner.status.setText(f"step {event.step}: loss {event.loss:.3f} ({event.seconds:.0f} s)")
            elif isinstance(event, ev.Failed):
                notify_error(event.message)
            elif isinstance(event, ev.Finished) and event.model:
                owner.session.set_checkpoint(event.model)
                dice = "-" if math.isnan(event.best_dice) else f"{event.best_dice:.3f}"
                owner.status.setText(f"new model {event.model.name}: validation Dice {dice}")

        def then():  # the open case again, predicted by the new model: asked first where edits would be replaced
            model, case = owner.session.checkpoint, owner.case_id
            left = {c.id for c in sparse.cases_to_annotate(owner.session.task)} if owner.session.task else set()
            if case is None or model == checkpoint or case not in left:  # an accepted case is ground truth now
                if model != checkpoint and model is not None:
                    owner.status.setText(f"{Path(model).stem} in use: Rank or open the next case")
                return
            if owner.unsaved(None) is not None and not asked(
                self,
                "Re-predict the open case?",
                f"{Path(model).stem} is ready.\nRe-predict {case} with it? Your edits of {case} not yet accepted "
                "would be replaced.",
            ):
                owner.status.setText(f"{Path(model).stem} in use; {case} keeps your edits (Predict re-predicts it)")
                return
            owner.suggested = None  # its edits are given up: the user chose the new model's prediction
            owner.predict(case)

        worker = owner._run(work, on_yield, desc="fine-tuning" if checkpoint else "training", then=then)
        if worker is not None:
            worker.volseg_stop = lambda: [trainer.stop() for trainer in trainers]
        return worker

    def compare(self):
        """Score every listed version on the same cases, in a worker (one line when no case is left to do it on)."""
        owner = self.owner
        if not owner._ready(need_model=False):
            return None
        task = owner.session.task
        models = [Path(self.table.item(r, 0).toolTip()) for r in range(self.table.rowCount())]
        folder = owner.models_dir()

        @background
        def work():
            from napari_volseg.annotate.compare import compare  # torch: imported when first needed

            yield from compare(task, models, folder)

        def on_yield(item, bar):
            if isinstance(item, ev.Progress):
                workers.show_progress(bar, item)
                owner.status.setText(f"comparing the versions {item.done}/{item.total}: {item.item}")
            else:
                self.scores, self.compared = item.scores, len(item.cases)
                owner.status.setText(f"compared {len(models)} version(s) on the same {len(item.cases)} case(s)")
                owner.refresh()

        return owner._run(work, on_yield, desc="comparing the versions")
