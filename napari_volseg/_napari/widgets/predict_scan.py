"""Predict & evaluate for a scan dropped without a task: segment the image layer in view on its own grid, score it
against a ``<case> ground truth`` layer dropped beside it, and star it when the model trained on it (by name, or by
its file's digest). A scan of several volumes (a 4D file: channels or time points) is segmented as the model reads
it: every volume for a model of as many channels, the selected one for a single-channel model, else one line."""

from __future__ import annotations

import re

import numpy as np
from napari.layers import Image

from napari_volseg import metrics
from napari_volseg._napari import workers
from napari_volseg._napari.layers import GROUND_TRUTH, META_KEY, geometry_of, image_in_view
from napari_volseg._napari.loading import case_layers, in_session_turns
from napari_volseg._napari.notify import background, notify_error
from napari_volseg._napari.widgets.common import set_labels
from napari_volseg.io import volumes

CHANNEL = re.compile(r"^(.*) \[(\d+)\]$")
"""napari's name for one volume of a multi-volume layer: ``la_003 [1]``."""


def _volumes_of(viewer, layer) -> tuple[str, list, int | None]:
    """The scan's name, its volumes' layers in order (just ``layer`` for a 3D scan) and ``layer``'s index among them."""
    found = CHANNEL.match(layer.name)
    if found is None:
        return layer.name, [layer], None
    name = found.group(1)
    pattern = re.compile(re.escape(name) + r" \[(\d+)\]$")
    siblings = sorted(
        (int(m.group(1)), other)
        for other in viewer.layers
        if isinstance(other, Image) and (m := pattern.match(other.name))
    )
    return name, [other for _, other in siblings], int(found.group(2))


def predict_scan(widget):
    """Predict an image layer opened without a task (a scan dropped onto the viewer) on its own grid:
    ``<name> prediction`` beside it, and its Dice and error layer when ``<case> ground truth`` is open too."""
    layer = image_in_view(widget.viewer)
    if layer is None:
        notify_error("nothing to predict: drop a scan onto the viewer, or open a task (Data tab)")
        return None
    if layer.ndim != 3 or layer.rgb:
        notify_error(f"{layer.name}: only 3D scans can be predicted without a task (open a task)")
        return None
    name, channel_layers, chosen = _volumes_of(widget.viewer, layer)
    active = widget.viewer.layers.selection.active  # by name: napari hands plugins proxies, a new one per access
    selected = active is not None and active.name == layer.name
    info = layer.metadata.get(META_KEY, {})
    case = info.get("case") or name
    kwargs = {"metadata": layer.metadata, "scale": layer.scale, "translate": layer.translate}
    geometry = geometry_of(kwargs, tuple(layer.data.shape))
    truth_layer = case_layers(widget.viewer, case, task_only=False).get(GROUND_TRUTH)  # dropped beside it
    truth = np.asarray(truth_layer.data) if truth_layer is not None else None
    channels = [np.asarray(one.data) for one in channel_layers]
    checkpoint, source = widget.session.checkpoint, info.get("source")

    @background
    def work():
        from napari_volseg.engine.predict import channels_to_predict, predict_volume  # torch: when first needed
        from napari_volseg.zoo.backend import open_model

        model = open_model(checkpoint)
        try:
            image = channels_to_predict(model.in_channels, name, channels, chosen, selected)
            volume = volumes.Volume(image, geometry)
            digest = volumes.file_digest(source) if source else None  # the same scan under another name
            return predict_volume(model, volume, case, truth, digest), dict(model.labels or {}), image.ndim == 4
        finally:
            model.release()

    def shown(returned):
        result, names, stacked = returned
        if not stacked and len(channel_layers) > 1:  # the volume segmented is the one shown under its prediction
            for volume in channel_layers:  # (napari had selected the hidden one it added last: the walkthrough's
                volume.visible = volume.name == layer.name  # heart_4d [1] was segmented and drawn over [0])
        steps = [lambda: set_labels(widget.viewer, f"{case} prediction", result.labels, layer, "prediction", case)]
        if result.errors is not None:
            steps.append(lambda: set_labels(widget.viewer, f"{case} errors", result.errors, layer, "errors", case))
        in_session_turns(widget.session, steps)
        if widget.session.task is None:  # in the table, exported and saved like a task's cases (unless a task
            widget.session.results_for_model(result.model)  # was opened meanwhile: not one of its cases)
            widget.session.dropped_labels = names
            widget.session.add_result(result)
        dice = metrics.mean_dice(result.scores) if result.scores else None
        if stacked:
            which = f" (all {len(channels)} volumes of {name}, as the model reads them)"
        else:
            which = f" (volume {chosen} of {name}: select another's layer to predict it)" if len(channels) > 1 else ""
        widget.status.setText(
            f"{layer.name}: predicted"
            + which
            + (f"; Dice against '{truth_layer.name}' {dice:.4f}" if dice is not None else "")
            + (" (*: a scan the model trained on, by its name or file: no test of it)" if result.trained_on else "")
        )

    widget.worker = work()
    widget.run_button.setEnabled(False)
    widget.status.setText(f"predicting {layer.name}…")
    return workers.start(
        widget.session,
        widget.worker,
        owner=widget,
        on_return=shown,
        on_error=lambda exc: (notify_error(exc), widget.status.setText(f"{layer.name}: not predicted")),
        on_done=lambda: widget._idle(None),
    )
