"""What the Train widget says about a run (plain Python): stages, time left, the model after Stop, never "nan"."""

from pathlib import Path

from napari_volseg import events as ev
from napari_volseg._napari.widgets.run_status import RunStatus, clock
from napari_volseg.config import load_preset


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def started(stage="", total=100):
    return ev.Started(total, 4, "cpu", ["a", "b"], ["c"], 0, 2, (32, 64, 64), stage)


def finished(step, best_path=None, last_path=None, stopped=True, best=float("nan")):
    return ev.Finished(step, best, best_path, last_path, stopped, 30.0)


def test_clock():
    assert (clock(42), clock(185), clock(3729)) == ("42 s", "3:05", "1:02:09")


def test_stop_before_any_validation_keeps_the_last_weights_and_names_the_file():
    run = RunStatus(Clock())
    run.begin(load_preset("fast-cpu"))
    run.started(started())
    run.step(ev.Step(1, 0, 0.9, 0.01, 1.0))
    last = Path("/runs/x.last.safetensors")
    event = finished(7, last_path=last)
    assert run.model_after(event) == last
    text = run.finished_text(event)
    assert text.startswith("stopped at step 7") and "the last weights" in text and "x.last.safetensors in /runs" in text
    assert "nan" not in text and "nan" not in run.finished_summary(event)


def test_after_a_validation_the_best_weights_are_the_model():
    run = RunStatus(Clock())
    run.begin(load_preset("fast-cpu"))
    run.started(started())
    run.validated(ev.Validated(50, 1, {"c": 0.8}, 0.8, 10.0))
    best, last = Path("/runs/x.safetensors"), Path("/runs/x.last.safetensors")
    run.saved(ev.CheckpointSaved(best, "best", 50, 0.8))
    event = finished(60, best_path=best, last_path=last, best=0.8)
    assert run.model_after(event) == best
    text = run.finished_text(event)
    assert "best validated weights (Dice 0.800 at step 50)" in text and "x.last.safetensors" in text


def test_stop_during_the_locator_stage_says_so():
    run = RunStatus(Clock())
    run.begin(load_preset("fast-cpu"))
    run.started(started("locator", 230))
    run.step(ev.Step(12, 0, 0.9, 0.01, 1.0, "locator"))
    event = finished(0)
    assert run.model_after(event) is None
    text = run.finished_text(event)
    assert "locator (cascade stage 1 of 2) at step 12 of 230" in text and "no model yet" in text
    assert "step 0" not in text and "nan" not in text


def test_stage_titles_elapsed_and_time_left():
    now = Clock()
    run = RunStatus(now)
    run.begin(load_preset("fast-cpu"))  # 10 minutes, locator gets a fifth
    run.started(started("locator", 1000))
    assert run.stage_title() == "cascade stage 1 of 2: locator (coarse grid)"
    for step in range(1, 11):
        now.t += 1.0
        run.step(ev.Step(step, 0, 0.5, 0.01, now.t, "locator"))
    text = run.step_text()
    assert "step 10 ·" in text and "10 s elapsed" in text
    assert "about 1:51 left in this stage" in text  # the 2-minute locator budget, not 990 steps at 1 s
    assert "/ 1000" not in text  # the clock ends this stage: its step cap is no goal to show
    assert run.preparing(ev.Progress(3, 15, "la_003")).startswith("cascade stage 2 of 2: preparing cases 3 / 15")
    run.started(started("", 500))
    assert run.stage_title() == "cascade stage 2 of 2: main network"


def test_the_step_count_has_a_goal_only_where_the_steps_end_the_run():
    import dataclasses

    now = Clock()
    run = RunStatus(now)
    preset = load_preset("fast-cpu")
    run.begin(dataclasses.replace(preset, train=dataclasses.replace(preset.train, minutes=None)))  # epochs only
    run.started(started("", 100))
    for step in range(1, 11):
        now.t += 1.0
        run.step(ev.Step(step, 0, 0.5, 0.01, now.t))
    assert "step 10 / 100" in run.step_text() and "about 1:21 left" in run.step_text()
    run = RunStatus(now)
    run.begin(dataclasses.replace(preset, train=dataclasses.replace(preset.train, minutes=60.0)))
    run.started(started("", 100))  # 100 steps at 1 s end long before the hour
    for step in range(1, 11):
        now.t += 1.0
        run.step(ev.Step(step, 0, 0.5, 0.01, now.t))
    assert "step 10 / 100" in run.step_text()


def test_a_third_worker_runs_while_training_and_predicting_fill_two_threads(qtbot):
    """Qt's pool has one thread per core: on two cores a training and a prediction filled it and every other
    worker (a case loading) waited for them, freezing the viewer 13 s. The session makes room."""
    import threading

    from napari.qt.threading import thread_worker

    from napari_volseg._napari.state import Session

    Session()
    release = threading.Event()

    @thread_worker
    def busy():
        release.wait(30)

    @thread_worker
    def quick():
        return 42

    long_ones = [busy(), busy()]
    for worker in long_ones:
        worker.start()
    got = []
    third = quick()
    third.returned.connect(got.append)
    third.start()
    try:
        qtbot.waitUntil(lambda: got == [42], timeout=5_000)
    finally:
        release.set()
        for worker in long_ones:
            qtbot.waitUntil(lambda w=worker: not w.is_running, timeout=10_000)


def test_a_run_without_validation_makes_its_averaged_model_file_the_model():
    """No validation cases: the model file holds the last weights averaged over the last saves (average_last), and
    that file, not the raw resumable one, becomes the model."""
    run = RunStatus(Clock())
    run.begin(load_preset("fast-cpu"))
    run.started(ev.Started(100, 4, "cpu", ["a", "b"], [], 0, 2, (32, 64, 64), ""))
    model, last = Path("/runs/x.safetensors"), Path("/runs/x.last.safetensors")
    history = [{"step": 50}, {"step": 100, "averaged_steps": [50, 100]}]
    event = ev.Finished(100, float("nan"), model, last, False, 30.0, history)
    assert run.model_after(event) == model
    text = run.finished_text(event)
    assert "the mean of the weights at steps 50, 100" in text and "x.safetensors in /runs" in text


def test_stop_now_says_what_stop_would_leave_and_whether_it_is_usable():
    """Before Stop is pressed the status says what it would leave: nothing, the latest weights, the coarse whole-scan
    model (a cascade's locator, until the main net validates better) or the main net's, with the quality verdict."""
    run = RunStatus(Clock())
    run.begin(load_preset("fast-cpu"))
    run.started(started("locator", 230))
    assert run.stop_now() == "Stop now: no model yet"
    run.step(ev.Step(1, 0, 0.9, 0.01, 1.0, "locator"))
    assert run.stop_now() == "Stop now: the latest weights, not validated yet"
    out = Path("/runs/x.safetensors")
    run.validated(ev.Validated(75, 2, {"c": 0.74}, 0.74, 40.0, "locator", volume_ratio=1.2))
    run.saved(ev.CheckpointSaved(Path("/runs/x.locator.safetensors"), "locator-best", 75, 0.74, "locator"))
    run.saved(ev.CheckpointSaved(out, "best", 75, 0.74, "locator"))
    assert run.stop_now() == "Stop now: the coarse whole-scan model (locator), usable: validation Dice 0.74"
    assert run.step_text().endswith("\n" + run.stop_now())
    run.started(started("", 500))  # the main net: worse at first, the locator stays the model
    run.step(ev.Step(25, 0, 0.9, 0.01, 50.0))
    run.validated(ev.Validated(25, 0, {"c": 0.09}, 0.09, 60.0, volume_ratio=20.0))
    assert "coarse whole-scan model (locator)" in run.stop_now()
    event = finished(30, best_path=out, last_path=Path("/runs/x.last.safetensors"), best=0.74)
    assert run.model_after(event) == out
    text = run.finished_text(event)
    assert "the coarse whole-scan network (the cascade's locator: Dice 0.740 at step 75" in text
    assert "Usable: validation Dice 0.74." in text
    assert run.finished_summary(event).endswith("model x.safetensors (usable: validation Dice 0.74)")


def test_a_model_that_validated_badly_is_called_not_usable_yet():
    run = RunStatus(Clock())
    run.begin(load_preset("fast-cpu"))
    run.started(started("", 100))
    run.step(ev.Step(25, 0, 0.9, 0.01, 1.0))
    out = Path("/runs/x.safetensors")
    run.validated(ev.Validated(25, 0, {"c": 0.09}, 0.09, 30.0, volume_ratio=20.4))
    run.saved(ev.CheckpointSaved(out, "best", 25, 0.09))
    assert run.stop_now() == (
        "Stop now: the model of step 25, not usable yet: Dice 0.09, predicts 20× the true volume; train longer"
    )
    text = run.finished_text(finished(30, best_path=out, best=0.09))
    assert "Not usable yet: Dice 0.09, predicts 20× the true volume; train longer." in text
