"""A model chooser any dock widget can place: the registry's models, Pull, and "Load model…".

It lists what :func:`napari_volseg.zoo.registry.list_models` knows (shipped pretrained models,
installed ones, pullable ones, recent runs) plus the session's own checkpoint, and sets the
session's model when the user picks one. Pulling and importing a MONAI bundle run in workers with
a napari progress bar; errors are one notification. Self-contained: place it anywhere.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QPushButton, QWidget

from napari_volseg import paths
from napari_volseg._napari import workers
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import compact, listen
from napari_volseg.engine.checkpoint import read_meta
from napari_volseg.engine.quality import of_file
from napari_volseg.errors import VolsegError
from napari_volseg.zoo.registry import ModelEntry, list_models

LOAD = "Load model…"


class ModelChooser(QWidget):
    """A combo box of models and a Pull button, bound to a viewer's :class:`Session`."""

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.entries: list[ModelEntry] = []
        self.worker = None
        self.combo = compact(QComboBox())  # a long model name must not widen a narrow dock
        self.combo.setToolTip(
            "pretrained, installed and recently trained models; Load model… opens a checkpoint "
            "(.safetensors) or a MONAI bundle (its configs/inference.json)"
        )
        self.pull_button = QPushButton("Pull")
        self.pull_button.setToolTip("download the selected model (SHA-256 checked) into the models folder")
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.combo, 1)
        row.addWidget(self.pull_button)
        self.refresh()
        self.combo.activated.connect(self._activated)
        self.combo.currentIndexChanged.connect(self._update_pull)
        self.pull_button.clicked.connect(self.pull_selected)
        listen(self, session.checkpoint_changed, lambda _path: self.refresh())

    # -- listing ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the list; the session's model (if any) is shown selected."""
        try:
            entries = list_models()
        except VolsegError as exc:  # a broken index must not hide the installed models
            notify_error(exc)
            entries = []
        current = Path(self.session.checkpoint) if self.session.checkpoint else None
        if current is not None and not any(e.path == current for e in entries):
            entries.insert(0, ModelEntry(current.stem, "this session", current))
        self.entries = entries
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("no model")
        for entry in entries:
            label, about = entry.label, entry.about or str(entry.path or entry.url)
            if entry.source in ("run", "this session") and entry.path is not None:  # trained here: say if usable
                quality = of_file(entry.path)
                if quality.usable is False:
                    label += " · not usable yet"
                started = read_meta(entry.path).get("started_from")
                about = f"{quality.line} · " + (f"started from {started} · " if started else "") + about
            self.combo.addItem(label)
            self.combo.setItemData(self.combo.count() - 1, about, 3)
        self.combo.addItem(LOAD)
        selected = next((i for i, e in enumerate(entries) if current is not None and e.path == current), None)
        self.combo.setCurrentIndex(0 if selected is None else selected + 1)
        self.combo.blockSignals(False)
        self._update_pull()

    def selected(self) -> ModelEntry | None:
        index = self.combo.currentIndex() - 1
        return self.entries[index] if 0 <= index < len(self.entries) else None

    def select(self, name: str) -> bool:
        """Choose the entry called ``name`` (as if the user had); False if there is none."""
        for i, entry in enumerate(self.entries):
            if entry.name == name:
                self.combo.setCurrentIndex(i + 1)
                self._activated(i + 1)
                return True
        return False

    def _update_pull(self, *_args) -> None:
        entry = self.selected()
        self.pull_button.setEnabled(entry is not None and entry.path is None and self.worker is None)

    def _activated(self, index: int) -> None:
        if self.combo.itemText(index) == LOAD:
            self._load_dialog()
            return
        entry = self.selected()
        if entry is not None and entry.path is not None and entry.path != self.session.checkpoint:
            self.session.set_checkpoint(entry.path)

    # -- pull and load ----------------------------------------------------------------------------

    def _run(self, work, desc: str, done) -> object:
        self.worker = work()
        self.pull_button.setEnabled(False)
        return workers.start(
            self.session,
            self.worker,
            desc=desc,
            owner=self,
            on_yield=lambda step, bar: (setattr(bar, "total", step[1] or 0), bar.update(step[0] - bar.n)),
            on_return=done,
            on_done=lambda: (setattr(self, "worker", None), self.refresh()),
        )

    def pull_selected(self):
        """Pull the selected (not installed) model in a worker; it is selected once installed."""
        entry = self.selected()
        if entry is None or entry.path is not None or self.worker is not None:
            return None

        @background
        def work():
            from napari_volseg.events import Downloaded
            from napari_volseg.zoo.pull import pull

            for event in pull(entry.name):
                if isinstance(event, Downloaded):
                    return event.path
                yield (event.done, event.total)

        return self._run(work, f"pulling {entry.name}", lambda path: self.session.set_checkpoint(Path(path)))

    def load(self, path: str | Path):
        """Use a checkpoint file, or import a MONAI bundle (its folder or a file in configs/) in a worker."""
        path = Path(path)
        folder = path.parent.parent if path.name in ("inference.json", "metadata.json") else path
        from napari_volseg.zoo.bundle_import import is_bundle

        if not is_bundle(folder):
            from napari_volseg.engine import checkpoint as ckpt

            if ckpt.read_meta(path).get("format") is None:
                notify_error(f"{path.name} is not a napari-volseg checkpoint or a MONAI bundle")
                return None
            self.session.set_checkpoint(path)
            return None

        @background
        def work():
            from napari_volseg.zoo.bundle_import import import_bundle

            yield (0, 1)
            return import_bundle(folder)

        return self._run(work, f"importing {folder.name}", lambda out: self.session.set_checkpoint(Path(out)))

    def _load_dialog(self) -> None:
        runs = paths.runs_dir()  # where the widgets' training runs (and Stop's last weights) are
        runs.mkdir(parents=True, exist_ok=True)
        path, _ = QFileDialog.getOpenFileName(
            self, "Load a model", str(runs), "Checkpoints or MONAI bundles (*.safetensors inference.json metadata.json)"
        )
        if path:
            self.load(path)
        else:
            self.refresh()
