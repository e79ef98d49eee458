"""``volseg demo`` with a window: napari with the plugin's widgets docked and the demo task open."""

from __future__ import annotations

from pathlib import Path


def open_demo(viewer, data: Path | None = None, kind: str = "ct") -> None:
    """Open the demo task's first case in ``viewer`` and dock the plugin's widgets."""
    from napari_volseg._napari.layers import image_layer, labels_layer
    from napari_volseg.demo import demo_task

    task = demo_task(data, kind)
    case = task.cases[0]
    image, label = case.load()
    for data_, kwargs, kind_ in (
        image_layer(image, case.id, case=case.id, modality=task.modalities.get(0)),
        labels_layer(label, f"{case.id} ground truth", case=case.id),
    ):
        getattr(viewer, f"add_{kind_}")(data_, **kwargs)
    viewer.dims.set_point(0, viewer.layers[0].data_to_world([int(label.data.sum(axis=(1, 2)).argmax()), 0, 0])[0])


def run_viewer(data: Path | None = None, kind: str = "ct") -> int:
    import napari

    viewer = napari.Viewer(title="napari-volseg demo")
    open_demo(viewer, data, kind)
    napari.run()
    return 0
