"""The Prompts tab in a real viewer: clicks, boxes and scribbles placed on napari's prompt layers as a user does."""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")

SHAPE, SPACING = (24, 48, 48), (2.0, 1.0, 1.0)


def ball(centre, radius_mm):
    grids = np.meshgrid(*(np.arange(s) * sp for s, sp in zip(SHAPE, SPACING, strict=True)), indexing="ij")
    return sum((g - c * sp) ** 2 for g, c, sp in zip(grids, centre, SPACING, strict=True)) <= radius_mm**2


@pytest.fixture
def prompts(make_napari_viewer):
    from napari_volseg._napari.widgets.prompts import PromptsWidget

    viewer = make_napari_viewer()
    truth = ball((12, 24, 24), 10.0) | ball((12, 24, 6), 4.0)
    image = (truth * 2.0 + np.random.default_rng(0).normal(scale=0.3, size=SHAPE)).astype(np.float32)
    viewer.add_image(image, name="scan", scale=SPACING)
    widget = PromptsWidget(viewer)
    widget.model.setCurrentText("random-walker")
    return viewer, widget, truth


def _answered(qtbot, widget):
    qtbot.waitUntil(lambda: widget.worker is None and not widget.queue, timeout=60_000)


def dice(a, b):
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_clicks_box_scribble_and_undo_segment_the_object_in_3d(prompts, qtbot):
    viewer, widget, truth = prompts
    assert widget.image.currentText() == "scan" and "random-walker" in [
        widget.model.itemText(i) for i in range(widget.model.count())
    ]
    widget.pos_button.click()
    points = viewer.layers["prompts +"]
    assert viewer.layers.selection.active is points and points.mode == "add"
    assert tuple(points.scale) == SPACING  # placed on the scan's voxels
    points.add([12, 24, 24])  # what napari's add tool does on a click
    _answered(qtbot, widget)
    annotation = viewer.layers["scan annotation"]
    first = np.asarray(annotation.data).copy()
    assert first.shape == SHAPE and dice(first, ball((12, 24, 24), 10.0)) > 0.7
    assert "1 click" in widget.status.text() and "voxels" in widget.status.text()
    widget.neg_button.click()
    viewer.layers["prompts −"].add([12, 24, 6])  # the small ball next to it is not the object
    _answered(qtbot, widget)
    assert not np.asarray(annotation.data)[12, 24, 6]
    widget.undo()  # the negative click goes, with its marker
    assert len(viewer.layers["prompts −"].data) == 0 and np.array_equal(np.asarray(annotation.data), first)
    widget.box_button.click()
    assert viewer.layers["prompt box"].mode == "add_rectangle" and viewer.dims.ndisplay == 2
    viewer.layers["prompt box"].add_rectangles(np.array([[12, 15, 15], [12, 15, 33], [12, 33, 33], [12, 33, 15]]))
    _answered(qtbot, widget)
    assert widget.interactive.counts == {"clicks": 1, "boxes": 1, "scribbles": 0}
    widget.scribble_button.click()
    scribbles = viewer.layers["prompt scribbles"]
    assert scribbles.mode == "paint" and scribbles.selected_label == 1
    painted = np.asarray(scribbles.data).copy()
    painted[12, 20:28, 24] = 1
    scribbles.data = painted
    scribbles.events.paint()  # napari's brush emits it at the end of a stroke
    _answered(qtbot, widget)
    assert widget.interactive.counts["scribbles"] == 1
    assert dice(annotation.data, ball((12, 24, 24), 10.0)) > 0.7


def test_a_second_object_never_overwrites_the_first_and_bad_prompts_keep_the_work(prompts, qtbot, monkeypatch):
    viewer, widget, truth = prompts
    said = []
    monkeypatch.setattr("napari_volseg._napari.widgets.prompts.notify_error", said.append)
    widget.tool("positive")
    viewer.layers["prompts +"].add([12, 24, 24])
    _answered(qtbot, widget)
    annotation = viewer.layers["scan annotation"]
    first = np.asarray(annotation.data) == 1
    widget.next_button.click()
    assert widget.value.value() == 2 and len(viewer.layers["prompts +"].data) == 0
    viewer.layers["prompts +"].add([12, 24, 6])  # the small ball beside it, grown into the first by the walker
    _answered(qtbot, widget)
    data = np.asarray(annotation.data)
    assert (data[first] == 1).all() and (data == 2).any()
    before = data.copy()
    viewer.layers["prompts +"].add([12, 24, 60])  # beyond the scan's 48 columns
    _answered(qtbot, widget)
    assert len(said) == 1 and "outside the scan" in str(said[0]) and "\n" not in str(said[0])
    assert np.array_equal(np.asarray(annotation.data), before)
    assert len(viewer.layers["prompts +"].data) == 1  # the bad marker is taken away
    viewer.layers.remove("scan")
    assert widget.image.count() == 0
    said.clear()
    widget.tool("box")
    assert said == ["no image to prompt on: open a scan or a task case first"]


def test_prompts_correct_the_annotate_case_and_the_accept_report_counts_them(
    make_napari_viewer, annotate_task, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("VOLSEG_CACHE", str(tmp_path / "cache"))
    from napari_volseg._napari.loading import session_for
    from napari_volseg._napari.widgets import AnnotateWidget
    from napari_volseg._napari.widgets.prompts import PromptsWidget
    from napari_volseg.io import decathlon

    viewer = make_napari_viewer()
    annotate, widget = AnnotateWidget(viewer), PromptsWidget(viewer)
    session_for(viewer).set_task(decathlon.load_task(annotate_task))
    case = annotate.cases.item(0, 0).text()
    annotate.open_case(case, predict=False)  # all unlabelled: a grey veil
    qtbot.waitUntil(lambda: annotate.case_id == case and annotate.worker is None, timeout=60_000)
    layer = viewer.layers[f"{case} annotation"]
    from napari_volseg._napari.loading import case_layers

    image = case_layers(viewer, case)["image"]
    qtbot.waitUntil(lambda: widget.image.currentText() == image.name, timeout=10_000)  # it follows the open case
    widget.model.setCurrentText("random-walker")
    widget.tool("positive")
    centre = [s // 2 for s in np.asarray(image.data).shape]
    viewer.layers["prompts +"].add(centre)
    _answered(qtbot, widget)
    data = np.asarray(layer.data)
    assert data[tuple(centre)] == 1 and set(np.unique(data)) <= {1, 255}  # the rest stays unlabelled
    assert annotate.accept() is not None
    qtbot.waitUntil(lambda: annotate.writer is None and not annotate.session.busy_loading(), timeout=60_000)
    assert "prompts: 1 clicks" in annotate.edits_label.text()


def test_every_tab_label_fits_the_dock_at_its_default_width(make_napari_viewer, qtbot):
    from napari_volseg._napari.widgets import VolsegDock

    viewer = make_napari_viewer(show=True)
    dock = VolsegDock(viewer)
    viewer.window.add_dock_widget(dock, name="napari-volseg", area="right")
    qtbot.waitUntil(lambda: dock.tabs.width() >= 360, timeout=10_000)
    assert "Prompts" in [dock.tabs.tabText(i) for i in range(dock.tabs.count())]
    bar = dock.tabs.tabBar()
    needed = sum(bar.tabRect(i).width() for i in range(bar.count()))
    width = dock.sizeHint().width()  # what the dock gets beside the canvas on a 1366 px screen
    assert needed <= width, f"the tab bar needs {needed} px of {width}: it scrolls"


def test_the_model_follows_the_sessions_model_to_its_promptable_companion(prompts):
    from napari_volseg.zoo.registry import resolve

    viewer, widget, _ = prompts
    widget.session.set_checkpoint(resolve("msd-hippocampus"))
    assert widget.model.currentText() == "msd-hippocampus-interactive"
    widget.session.set_checkpoint(resolve("msd-heart"))
    assert widget.model.currentText() == "msd-heart-interactive"


def test_the_resting_line_follows_what_is_open(make_napari_viewer):
    """The walkthrough: "open a scan, then choose a tool" stayed with a scan open and chosen in the image box."""
    import numpy as np

    from napari_volseg._napari.widgets.prompts import CHOOSE_TOOL, NO_SCAN, PromptsWidget

    viewer = make_napari_viewer()
    widget = PromptsWidget(viewer)
    assert widget.status.text() == NO_SCAN
    viewer.add_image(np.zeros((4, 8, 8), np.float32), name="scan")
    assert widget.image.currentText() == "scan" and widget.status.text() == CHOOSE_TOOL
    viewer.layers.clear()
    assert widget.status.text() == NO_SCAN
