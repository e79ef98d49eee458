"""What keeps the GUI thread free: layer work one step per event-loop turn, frozen long-lived objects, image layers
kept under labels."""

import gc

import numpy as np


def test_in_turns_runs_one_step_per_turn_then_the_rest(qtbot):
    from napari_volseg._napari.responsive import in_turns

    done = []
    steps = [lambda: done.append(1), lambda: done.append(2), lambda: done.append(3)]
    in_turns(steps, then=lambda: done.append("then"), ended=lambda: done.append("ended"))
    assert done == [1]  # the first at once, the others after the viewer has had its turn
    qtbot.waitUntil(lambda: done == [1, 2, 3, "then", "ended"], timeout=5_000)


def test_in_turns_drops_what_is_left_once_a_newer_request_came(qtbot):
    from napari_volseg._napari.responsive import in_turns

    done, wanted, ended = [], {"case": "a"}, []
    in_turns(
        [lambda: done.append(1), lambda: wanted.update(case="b"), lambda: done.append(3)],
        then=lambda: done.append("then"),
        current=lambda: wanted["case"] == "a",
        ended=lambda: ended.append(True),
    )
    qtbot.wait(200)
    assert done == [1] and ended == [True]  # dropped: the chain still says it ended, once
    called = []
    in_turns([], then=lambda: called.append(True), ended=lambda: called.append("ended"))
    assert called == [True, "ended"]  # nothing to do: then() at once


def test_a_step_that_says_again_runs_again_next_turn(qtbot):
    from napari_volseg._napari.responsive import AGAIN, in_turns

    left, done = [3], []

    def one_at_a_time():
        left[0] -= 1
        done.append(left[0])
        return AGAIN if left[0] > 0 else None

    in_turns([one_at_a_time], then=lambda: done.append("then"), ended=lambda: done.append("ended"))
    assert done == [2]
    qtbot.waitUntil(lambda: done == [2, 1, 0, "then", "ended"], timeout=5_000)


def test_a_chain_whose_current_check_raises_still_ends_once(qtbot):
    from napari_volseg._napari.responsive import in_turns

    ended = []

    def current():
        raise RuntimeError("the widget is gone")

    try:
        in_turns([lambda: None, lambda: None], current=current, ended=lambda: ended.append(True))
    except RuntimeError:
        pass
    qtbot.wait(50)
    assert ended == [True]  # busy_loading() would otherwise count this chain for good


def test_a_failing_step_ends_the_chain_once(qtbot, monkeypatch):
    from napari_volseg._napari import notify
    from napari_volseg._napari.responsive import in_turns

    said, ended = [], []
    monkeypatch.setattr(notify, "notify_error", said.append)
    in_turns([lambda: 1 / 0, lambda: said.append("not run")], ended=lambda: ended.append(True))
    qtbot.wait(100)
    assert ended == [True] and len(said) == 1 and "showing the layers failed" in str(said[0])


def test_a_session_with_a_viewer_freezes_long_lived_objects(make_napari_viewer, qtbot):
    """napari runs gc.collect() per removed layer: frozen libraries make it walk only what came after."""
    from napari_volseg._napari.loading import session_for

    session_for(make_napari_viewer())
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 100_000, timeout=60_000)


def test_an_image_added_after_its_labels_goes_under_them(make_napari_viewer):
    from napari_volseg._napari.loading import add_layer

    viewer = make_napari_viewer()
    add_layer(viewer, np.zeros((4, 8, 8), np.uint8), {"name": "case ground truth"}, "labels")
    add_layer(viewer, np.zeros((4, 8, 8), np.float32), {"name": "case", "contrast_limits_range": (0, 1)}, "image")
    assert [layer.name for layer in viewer.layers] == ["case", "case ground truth"]


def test_nothing_is_frozen_while_the_viewer_shows_layers(make_napari_viewer, monkeypatch):
    """A frozen layer that napari later removes would never be collected, nor its volume."""
    import threading

    from napari_volseg._napari import responsive

    frozen_by = []  # threads that froze (an earlier test's warm-up thread may freeze meanwhile: not this call)
    monkeypatch.setattr(responsive.gc, "freeze", lambda: frozen_by.append(threading.get_ident()))
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((4, 8, 8), np.float32))
    assert responsive.freeze_long_lived(viewer) is False and threading.get_ident() not in frozen_by
    viewer.layers.clear()
    assert responsive.freeze_long_lived(viewer) is True and threading.get_ident() in frozen_by


def test_the_same_case_asked_for_twice_while_it_is_shown_keeps_its_ground_truth(
    make_napari_viewer, qtbot, tiny_ct_task
):
    from napari_volseg._napari import loading
    from napari_volseg._napari.widgets import DataWidget

    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    data.open_task(tiny_ct_task)
    qtbot.waitUntil(lambda: "spleen_001 ground truth" in viewer.layers and data.session.case_id == "spleen_001")
    qtbot.wait(100)
    session = data.session
    payload = loading._case_payload(session.task, "spleen_003")
    loading._show_case(session, *payload)  # its image now, its ground truth a turn later...
    loading._show_case(session, "spleen_003", [], None)  # ...and asked for again in between
    qtbot.waitUntil(lambda: "spleen_003 ground truth" in viewer.layers, timeout=5_000)
    qtbot.wait(100)
    assert [layer.name for layer in viewer.layers] == ["spleen_003", "spleen_003 ground truth"]


def test_refill_redraws_a_reused_layer_once_and_leaves_it_where_its_new_volume_lies():
    """A reused layer gets the new volume, spacing and origin (its extent follows them), and napari re-slices it once:
    for the data, not once more for each transform (an unchanged transform is not even assigned)."""
    from napari.layers import Image, Labels

    from napari_volseg._napari.loading import refill

    for kind in (Image, Labels):
        layer = kind(np.zeros((4, 5, 6), dtype=np.uint8), scale=(1.0, 1.0, 1.0), translate=(0.0, 0.0, 0.0))
        sliced, scaled = [], []  # napari emits set_data each time it has re-sliced the layer
        layer.events.set_data.connect(lambda event, sliced=sliced: sliced.append(1))
        layer.events.scale.connect(lambda event, scaled=scaled: scaled.append(1))
        data = np.ones((8, 5, 6), dtype=np.uint8)
        meta = {"volseg": {"case": "b"}}
        refill(layer, data, {"name": "b", "scale": (2.0, 1.0, 1.0), "translate": (10.0, 0.0, 0.0), "metadata": meta})
        assert layer.data is data and layer.name == "b" and layer.metadata == meta
        assert np.allclose(layer.scale, (2.0, 1.0, 1.0)) and np.allclose(layer.translate, (10.0, 0.0, 0.0))
        assert np.allclose(layer.extent.world[:, 0], (10.0, 24.0))  # 8 slices 2 mm apart from 10 mm (voxel centres)
        assert len(sliced) == 1 and scaled == [1]
        sliced.clear()
        refill(
            layer, data.copy(), {"name": "c", "scale": (2.0, 1.0, 1.0), "translate": (10.0, 0.0, 0.0), "metadata": meta}
        )
        assert len(sliced) == 1 and scaled == [1]  # the same spacing: not assigned again


def test_another_cases_layers_go_one_per_event_loop_turn(make_napari_viewer, qtbot, tiny_ct_task):
    """Opening a case removes the last one's extra layers (prediction, errors, preview) one per turn: each removal
    costs napari a garbage collection, and several in one turn froze the viewer for their sum."""
    from qtpy.QtCore import QTimer

    from napari_volseg._napari import loading
    from napari_volseg._napari.widgets import DataWidget

    viewer = make_napari_viewer()
    data = DataWidget(viewer)
    data.open_task(tiny_ct_task)
    qtbot.waitUntil(
        lambda: "spleen_001 ground truth" in viewer.layers and not data.session.busy_loading(), timeout=30_000
    )
    like = viewer.layers["spleen_001 ground truth"]
    for role in ("prediction", "errors", "preview"):
        viewer.add_labels(
            np.zeros(like.data.shape, np.uint8),
            name=f"spleen_001 {role}",
            metadata={"volseg": {"case": "spleen_001", "role": role, "task": str(tiny_ct_task)}},  # as the plugin's
        )
    turns, in_one_turn = [], []

    def removed(event):
        in_one_turn.append(event.value.name)
        if len(in_one_turn) == 1:
            QTimer.singleShot(0, lambda: (turns.append(list(in_one_turn)), in_one_turn.clear()))

    viewer.layers.events.removed.connect(removed)
    loading.open_case(data.session, "spleen_003")
    qtbot.waitUntil(lambda: not data.session.busy_loading(), timeout=30_000)
    qtbot.wait(50)
    assert [layer.name for layer in viewer.layers] == ["spleen_003", "spleen_003 ground truth"]
    assert len(turns) == 3 and all(len(names) == 1 for names in turns)
