"""What keeps the GUI thread free: layer work one step per event-loop turn, frozen long-lived objects, image layers
kept under labels."""

import gc

import numpy as np


def test_in_turns_runs_one_step_per_turn_then_the_rest(qtbot):
    from napari_volseg._napari.responsive import in_turns

    done = []
    in_turns([lambda: done.append(1), lambda: done.append(2), lambda: done.append(3)], then=lambda: done.append("then"))
    assert done == [1]  # the first at once, the others after the viewer has had its turn
    qtbot.waitUntil(lambda: done == [1, 2, 3, "then"], timeout=5_000)


def test_in_turns_drops_what_is_left_once_a_newer_request_came(qtbot):
    from napari_volseg._napari.responsive import in_turns

    done, wanted = [], {"case": "a"}
    in_turns(
        [lambda: done.append(1), lambda: wanted.update(case="b"), lambda: done.append(3)],
        then=lambda: done.append("then"),
        current=lambda: wanted["case"] == "a",
    )
    qtbot.wait(200)
    assert done == [1]
    called = []
    in_turns([], then=lambda: called.append(True))
    assert called == [True]  # nothing to do: then() at once


def test_a_session_with_a_viewer_freezes_long_lived_objects(make_napari_viewer, qtbot):
    """napari runs gc.collect() per removed layer: frozen libraries make it walk only what came after."""
    from napari_volseg._napari.state import session_for

    session_for(make_napari_viewer())
    qtbot.waitUntil(lambda: gc.get_freeze_count() > 100_000, timeout=60_000)


def test_an_image_added_after_its_labels_goes_under_them(make_napari_viewer):
    from napari_volseg._napari.loading import add_layer

    viewer = make_napari_viewer()
    add_layer(viewer, np.zeros((4, 8, 8), np.uint8), {"name": "case ground truth"}, "labels")
    add_layer(viewer, np.zeros((4, 8, 8), np.float32), {"name": "case", "contrast_limits_range": (0, 1)}, "image")
    assert [layer.name for layer in viewer.layers] == ["case", "case ground truth"]
