"""Prompts: click, box and scribble an object in napari and get its whole 3D mask back, in a worker.

Only translation between napari's layers and :mod:`napari_volseg.interactive`: clicks on two Points layers
(``prompts +``, ``prompts −``: napari's add tool places either with no mode switch, each keeps its colour), a box on
a Shapes layer's current slice (``prompt box``), scribbles with napari's brush (``prompt scribbles``: 1 object, 2
background). Prompts are answered in a worker, one at a time, into the Annotate tab's ``<case> annotation`` when a
case is open (Accept, Undo accept, Fine-tune unchanged), else ``<image> annotation``; other objects stay as they are,
and a prediction already there is corrected.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from napari_volseg._napari.layers import META_KEY, label_colors
from napari_volseg._napari.loading import add_layer, case_layers, session_for
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import button_row, compact, listen

POSITIVE, NEGATIVE, BOX, SCRIBBLES = "prompts +", "prompts −", "prompt box", "prompt scribbles"
KEYS = {"positive": "Shift-P", "negative": "Shift-N", "box": "Shift-B", "scribble": "Shift-S", "undo": "Shift-Z"}
NO_IMAGE = "no image to prompt on: open a scan or a task case first"
HINTS = {"positive": "click inside the object", "negative": "click where the mask should not be",
         "box": "draw a rectangle around the object on this slice", "scribble": "paint over the object",
         "erase": "paint over background the mask covers"}  # fmt: skip


def promptable_models() -> list[str]:
    """Promptable zoo models and recent runs, by name, then the model-free random walker."""
    from napari_volseg.interactive import RANDOM_WALKER
    from napari_volseg.zoo.registry import promptable_models as listed

    return [e.name for e in listed()] + [RANDOM_WALKER]


NO_SCAN, CHOOSE_TOOL = "open a scan, then choose a tool", "choose a tool: + click, − click, box or scribble"


class PromptsWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.interactive = None
        """The :class:`~napari_volseg.interactive.InteractiveSession` of the current object."""
        self.key: tuple | None = None
        """(image layer, model, value) the current object was started with: another one starts a new object."""
        self.segmenters: dict[str, object] = {}
        self.queue: deque = deque()
        self.worker = None
        self.placed: list[tuple] = []
        """Each answered prompt's marker (layer, what), so Undo removes the marker with the answer."""
        self.seen: dict[str, int] = {}
        self.scribbled: np.ndarray | None = None
        self.under: np.ndarray | None = None
        """The annotation as it was when the current object was started (what it gives back where it leaves)."""

        layout = QVBoxLayout(self)
        intro = QLabel(
            "Click inside (+) or outside (−) an object, draw a box on a slice, or scribble: the whole 3D object is "
            "segmented at each prompt. Other objects stay as they are."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.model = compact(QComboBox())
        self.model.addItems(promptable_models())
        self.model.setToolTip(
            "a promptable model (…-interactive: trained on clicks; volseg-interactive: any structure)"
            " or random-walker (no model)"
        )
        form.addRow("model", self.model)
        self.image = compact(QComboBox())
        self.image.setToolTip("the image the prompts are placed on")
        form.addRow("image", self.image)
        self.value = compact(QSpinBox(minimum=1, maximum=254))
        self.value.setToolTip("the label value the object is written with (the class in a task)")
        form.addRow("object value", self.value)
        layout.addLayout(form)
        row, (self.pos_button, self.neg_button, self.box_button) = button_row("+ click", "− click", "Box")
        layout.addLayout(row)
        row, (self.scribble_button, self.erase_button) = button_row("Scribble +", "Scribble −")
        layout.addLayout(row)
        row, (self.undo_button, self.next_button) = button_row("Undo prompt", "Next object")
        layout.addLayout(row)
        for button, key in (
            (self.pos_button, "positive"),
            (self.neg_button, "negative"),
            (self.box_button, "box"),
            (self.scribble_button, "scribble"),
            (self.undo_button, "undo"),
        ):
            button.setToolTip(f"{button.toolTip() or button.text()} ({KEYS[key]})")
        self.status = QLabel(NO_SCAN)
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.pos_button.clicked.connect(lambda: self.tool("positive"))
        self.neg_button.clicked.connect(lambda: self.tool("negative"))
        self.box_button.clicked.connect(lambda: self.tool("box"))
        self.scribble_button.clicked.connect(lambda: self.tool("scribble", 1))
        self.erase_button.clicked.connect(lambda: self.tool("scribble", 2))
        self.undo_button.clicked.connect(self.undo)
        self.next_button.clicked.connect(self.next_object)
        listen(self, napari_viewer.layers.events.inserted, lambda e: self.refresh_images())
        listen(self, napari_viewer.layers.events.removed, lambda e: self.refresh_images())
        listen(self, self.session.case_opened, self.follow_case)
        listen(self, self.session.checkpoint_changed, lambda path: self.follow_model())
        for action, key in KEYS.items():
            handler = self.undo if action == "undo" else (lambda a=action: self.tool(a, 1))
            napari_viewer.bind_key(key, lambda viewer, h=handler: h(), overwrite=True)
        self.refresh_images()

    def image_layers(self) -> list:
        from napari.layers import Image

        return [layer for layer in self.viewer.layers if isinstance(layer, Image) and layer.ndim == 3 and not layer.rgb]

    def refresh_images(self) -> None:
        names = [layer.name for layer in self.image_layers()]
        current = self.image.currentText()
        if names == [self.image.itemText(i) for i in range(self.image.count())]:
            return
        self.image.blockSignals(True)
        self.image.clear()
        self.image.addItems(names)
        active = self.viewer.layers.selection.active
        chosen = current if current in names else (active.name if active is not None and active.name in names else "")
        if chosen:
            self.image.setCurrentText(chosen)
        self.image.blockSignals(False)
        if self.status.text() in (NO_SCAN, CHOOSE_TOOL):  # the resting line follows what is open
            self.status.setText(CHOOSE_TOOL if names else NO_SCAN)

    def follow_model(self) -> None:
        """The session's model changed (msd-hippocampus chosen, or a fine-tuned version): choose its promptable
        companion where the zoo has one (``msd-hippocampus-interactive``)."""
        checkpoint = self.session.checkpoint
        if checkpoint is None:
            return
        stem = Path(checkpoint).name.removesuffix(".safetensors")
        names = [self.model.itemText(i) for i in range(self.model.count())]
        companion = next((n for n in (f"{stem}-interactive", f"{stem.split('.')[0]}-interactive") if n in names), None)
        if companion is not None:
            self.model.setCurrentText(companion)

    def follow_case(self, case_id: str) -> None:
        """A task case opened (Data, Predict or Annotate): prompts go on its image."""
        self.refresh_images()
        image = case_layers(self.viewer, case_id).get("image")
        if image is not None:
            self.image.setCurrentText(image.name)

    def image_layer(self):
        name = self.image.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def target(self, image):
        """The annotation layer the object goes into: the Annotate case's, else ``<image> annotation`` (made)."""
        case = image.metadata.get(META_KEY, {}).get("case")
        found = case_layers(self.viewer, case).get("annotation") if case else None
        if found is not None:
            return found
        name = f"{image.name} annotation"
        if name in self.viewer.layers:
            return self.viewer.layers[name]
        meta = {META_KEY: {**image.metadata.get(META_KEY, {}), "role": "annotation"}}
        kwargs = {
            "name": name,
            "scale": image.scale,
            "translate": image.translate,
            "metadata": meta,
            "opacity": 0.6,
            "colormap": label_colors("annotation"),
        }
        return add_layer(self.viewer, np.zeros(image.data.shape, np.uint8), kwargs, "labels")

    def prompt_layer(self, name: str, image):
        """The prompt layer ``name`` aligned with ``image`` (made on first use, watched for new prompts)."""
        if name in self.viewer.layers:
            return self.viewer.layers[name]
        common = {"name": name, "scale": image.scale, "translate": image.translate}
        if name in (POSITIVE, NEGATIVE):
            colour = "lime" if name == POSITIVE else "red"
            layer = self.viewer.add_points(ndim=3, face_color=colour, border_color="white", size=4, **common)
        elif name == BOX:
            layer = self.viewer.add_shapes(
                ndim=3, edge_color="yellow", face_color="transparent", edge_width=1, **common
            )
        else:
            layer = self.viewer.add_labels(np.zeros(image.data.shape, np.uint8), opacity=0.8, **common)
            layer.colormap = label_colors("annotation")
            self.scribbled = np.zeros(image.data.shape, bool)
        self.seen[name] = 0
        if name == SCRIBBLES:
            listen(self, layer.events.paint, lambda e: self.scribble_painted())
        else:
            listen(self, layer.events.data, lambda e, n=name: self.placed_prompt(n, e))
        return layer

    def tool(self, which: str, paint: int = 1) -> None:
        image = self.image_layer()
        if image is None:
            notify_error(NO_IMAGE)
            return
        name = {"positive": POSITIVE, "negative": NEGATIVE, "box": BOX, "scribble": SCRIBBLES}[which]
        layer = self.prompt_layer(name, image)
        self.viewer.layers.selection.active = layer
        if which == "box":
            self.viewer.dims.ndisplay = 2
            layer.mode = "add_rectangle"
        elif which == "scribble":
            self.viewer.dims.ndisplay = 2
            layer.selected_label = paint
            layer.brush_size = 3
            layer.mode = "paint"
        else:
            layer.mode = "add"
        self.status.setText(HINTS[which if which != "scribble" or paint == 1 else "erase"])

    def placed_prompt(self, name: str, event=None) -> None:
        """A prompt layer's data changed: answer the prompts added since (napari says "adding" before a point or
        a rectangle is placed and "added" once it is: a box while it is drawn is not a prompt yet)."""
        if str(getattr(event, "action", "added")) != "added":
            return
        layer = self.viewer.layers[name]
        count = len(layer.data)
        if count < self.seen.get(name, 0):  # removed (by Undo, or by the user): nothing to answer
            self.seen[name] = count
            return
        new = list(layer.data[self.seen.get(name, 0) :])
        self.seen[name] = count
        for item in new:
            item = np.asarray(item)
            if name == BOX:
                z = int(round(float(item[:, 0].mean())))
                y0, x0 = item[:, 1].min(), item[:, 2].min()
                y1, x1 = item[:, 1].max(), item[:, 2].max()
                self.ask(("box", z, (y0, x0, y1, x1)), (name, None))
            else:
                self.ask(("click", tuple(float(v) for v in item), name == POSITIVE), (name, None))

    def scribble_painted(self) -> None:
        layer = self.viewer.layers[SCRIBBLES]
        data = np.asarray(layer.data)
        if self.scribbled is None or self.scribbled.shape != data.shape:
            self.scribbled = np.zeros(data.shape, bool)
        for value, positive in ((1, True), (2, False)):
            stroke = (data == value) & ~self.scribbled
            if stroke.any():
                self.scribbled |= stroke
                self.ask(("scribble", np.argwhere(stroke), positive), (SCRIBBLES, stroke))

    def ask(self, prompt: tuple, marker: tuple) -> None:
        image = self.image_layer()
        if image is None:
            notify_error(NO_IMAGE)
            return
        self.queue.append((prompt, marker))
        self.pump()

    def pump(self) -> None:
        if self.worker is not None or not self.queue:
            return
        prompt, marker = self.queue.popleft()
        image = self.image_layer()
        if image is None:
            self.queue.clear()
            return
        target = self.target(image)
        key = (image.name, self.model.currentText(), self.value.value(), target.name)
        value = self.value.value()
        start = np.asarray(target.data) == value if key != self.key else None
        data, spacing = image.data, tuple(float(s) for s in image.scale)
        fresh = key != self.key or self.interactive is None
        model = self.model.currentText()
        current = None if fresh else self.interactive

        @background
        def work():
            from napari_volseg.interactive import InteractiveSession, open_segmenter
            from napari_volseg.interactive.session import changed_box

            session = current
            if session is None:
                if model not in self.segmenters:
                    self.segmenters[model] = open_segmenter(model)
                session = InteractiveSession(self.segmenters[model], np.asarray(data), spacing, name=image.name)
                if start is not None and start.any():
                    session.start_from(start)
            before = session.mask.copy()
            kind, *args = prompt
            getattr(session, kind)(*args)
            return session, before, changed_box(before, session.mask)

        def on_return(result):
            session, before, box = result
            if key != self.key:
                self.under = np.asarray(target.data).copy()
            self.interactive, self.key = session, key
            self.placed.append(marker)
            self.show(target, before, session.mask, value, box)

        def failed(exc):
            notify_error(exc)
            self.remove_marker(marker)

        self.status.setText("answering…")
        worker = work()
        self.worker = worker
        worker.returned.connect(on_return)
        worker.errored.connect(failed)
        worker.finished.connect(lambda: self.idle(worker))
        self.session.track(worker, owner=self)
        worker.start()

    def idle(self, worker) -> None:
        if self.worker is worker:
            self.worker = None
        self.pump()

    def show(self, target, before: np.ndarray, after: np.ndarray, value: int, box=None) -> None:
        """Write the object's new mask into ``target`` inside ``box`` (where it changed; found in the worker), in
        place: a whole heart's label map merged and reassigned took the GUI thread ~100 ms a click."""
        from napari_volseg.interactive.session import changed_box, merge

        task = self.session.task
        unlabelled = task.unlabelled if task is not None and task.unlabelled is not None else 255
        box = changed_box(before, after) if box is None else box
        if box is not None:
            data = target.data
            data[box] = merge(data[box], self.under[box], before[box], after[box], value, free=(0, unlabelled))
            target.refresh()
        session = self.interactive
        counts = ", ".join(
            f"{n} {k if n != 1 else k[:-1] if k != 'boxes' else 'box'}" for k, n in session.counts.items() if n
        )
        self.session.prompts_used[target.name] = dict(session.counts)
        ml = after.sum() * float(np.prod(session.spacing)) / 1000.0
        seconds = f" in {session.last.seconds:.2f} s" if session.last is not None else ""
        self.status.setText(
            f"object {value}: {int(after.sum()):,} voxels ({ml:.1f} mL){seconds}; {counts or 'no prompts'}"
        )

    def remove_marker(self, marker) -> None:
        name, stroke = marker
        if name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        if name == SCRIBBLES and stroke is not None:
            data = np.asarray(layer.data).copy()
            data[stroke] = 0
            self.scribbled &= ~stroke
            layer.data = data
        elif len(layer.data):
            self.seen[name] = len(layer.data) - 1
            if name == BOX:
                layer.data = list(layer.data)[:-1]
            else:
                layer.data = np.asarray(layer.data)[:-1]

    def undo(self) -> None:
        if self.worker is not None or self.queue:
            notify_error("busy: wait for the prompt being answered")
            return
        if self.interactive is None or not self.placed:
            notify_error("nothing to undo: no prompt given for this object")
            return
        image = self.image_layer()
        target = self.target(image) if image is not None else None
        before = self.interactive.mask.copy()
        self.interactive.undo()
        self.remove_marker(self.placed.pop())
        if target is not None:
            self.show(target, before, self.interactive.mask, self.key[2])

    def next_object(self) -> None:
        """The object is done: it stays in the annotation; the next prompts make a new object (the next value)."""
        if self.worker is not None or self.queue:
            notify_error("busy: wait for the prompt being answered")
            return
        for name in (POSITIVE, NEGATIVE, BOX):
            if name in self.viewer.layers:
                self.viewer.layers[name].data = [] if name == BOX else np.zeros((0, 3))
                self.seen[name] = 0
        if SCRIBBLES in self.viewer.layers:
            self.viewer.layers[SCRIBBLES].data = np.zeros_like(np.asarray(self.viewer.layers[SCRIBBLES].data))
            self.scribbled = None
        done = self.value.value()
        self.interactive, self.key, self.placed, self.under = None, None, [], None
        self.value.setValue(min(done + 1, self.value.maximum()))
        show_info(f"object {done} kept; prompts now make object {self.value.value()}")
        self.status.setText(f"object {done} kept: prompt the next object (value {self.value.value()})")
