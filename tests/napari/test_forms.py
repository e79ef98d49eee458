"""Settings forms generated from dataclasses: widgets follow field metadata, a new field appears by itself."""

import os
from dataclasses import dataclass, field

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs a display (run under xvfb-run)")


@dataclass(frozen=True)
class Toy:
    steps: int = field(default=10, metadata={"help": "how many steps", "min": 1, "max": 500})
    rate: float = field(default=0.01, metadata={"min": 0.0, "min_exclusive": True, "max": 1.0})
    count: int = field(default=2, metadata={"min": 0, "min_exclusive": True, "max": 9, "max_exclusive": True})
    mode: str = field(default="b", metadata={"choices": ("a", "b", "c")})
    patch: tuple[int, int, int] = field(default=(32, 64, 64), metadata={"min": (8, 16, 16), "max": 256})
    budget: int | None = None
    limit: float | None = 2.5
    axes: tuple[int, ...] = field(default=(), metadata={"choices": (0, 1, 2)})
    flag: bool = True
    expert_only: int = 3


def test_form_widgets_follow_the_field_metadata(qtbot):
    from napari_volseg._napari.widgets.forms import DataclassForm

    form = DataclassForm(Toy, ("steps", "rate", "count", "mode", "patch", "budget", "limit", "axes", "flag"))
    qtbot.addWidget(form)
    form.show_values(Toy())
    assert form.apply(Toy()) == Toy()
    steps = form.fields["steps"]
    assert (steps.widget.min, steps.widget.max) == (
        1,
        500,
    ) and steps.widget.tooltip == "how many steps (1 <= value <= 500)"
    count = form.fields["count"].widget  # open bounds (validation.py's keys): an int box stops one short of them
    assert (count.min, count.max) == (1, 8)
    assert (form.fields["rate"].widget.min, form.fields["rate"].widget.max) == (0.0, 1.0)
    assert list(form.fields["mode"].widget.choices) == ["a", "b", "c"]
    patch = form.fields["patch"].parts
    assert [p.min for p in patch] == [8, 16, 16] and [p.max for p in patch] == [256, 256, 256]
    assert form.fields["budget"].parts[0].native.text() == "auto"  # None shows as the lowest value
    assert [w.name for w in form.advanced] == ["expert_only"] and not form.expander.isExpanded()

    changed = []
    form.changed.connect(lambda: changed.append(1))
    form.fields["axes"].set((0, 2))
    form.fields["budget"].set(1_500_000)
    form.fields["limit"].set(None)
    form.fields["patch"].set((16, 32, 48))
    value = form.apply(Toy())
    assert value.axes == (0, 2) and value.budget == 1_500_000 and isinstance(value.budget, int)
    assert value.limit is None and value.patch == (16, 32, 48)
    assert changed


def test_a_new_config_field_appears_in_the_train_form(qtbot, monkeypatch):
    """One definition: a field added to TrainConfig shows in the form without touching the widget."""
    import dataclasses

    from napari_volseg._napari.widgets import forms
    from napari_volseg.config import TrainConfig

    Extended = dataclasses.make_dataclass(
        "Extended", [("warmup_steps", int, field(default=7, metadata={"min": 0}))], bases=(TrainConfig,), frozen=True
    )
    form = forms.DataclassForm(Extended, ("epochs",))
    qtbot.addWidget(form)
    form.show_values(Extended())
    assert form.fields["warmup_steps"].get() == 7 and form.apply(Extended()) == Extended()


def test_the_cli_the_train_form_and_the_checkpoint_show_the_same_training_settings(qtbot, tiny_checkpoint):
    """Issue 25: one home per setting. Every TrainConfig field is a `volseg train` flag whose help, bounds and
    choices are the Train form's tooltip, and the checkpoint stores the same settings."""
    import argparse
    import dataclasses
    import json

    from napari_volseg.cli import build_parser
    from napari_volseg.config import TrainConfig
    from napari_volseg.engine import checkpoint as ckpt
    from napari_volseg.validation import describe

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    flags = {a.dest: a for a in sub.choices["train"]._actions}
    form = forms_for_train()
    qtbot.addWidget(form)
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert len(names) >= 31 and set(names) <= set(flags) and set(names) == set(form.fields)
    for f in dataclasses.fields(TrainConfig):
        action, tooltip = flags[f.name], form.fields[f.name].widget.tooltip
        assert action.help.startswith(describe(f)) and tooltip == describe(f), f.name
        choices = f.metadata.get("choices")
        if choices:
            assert tuple(action.choices) == tuple(choices), f.name
    stored = json.loads(ckpt.read_meta(tiny_checkpoint)["preset"])["train"]
    assert set(stored) == set(names)


def forms_for_train():
    from napari_volseg._napari.widgets.forms import DataclassForm
    from napari_volseg.config import TrainConfig

    return DataclassForm(TrainConfig, ("epochs",))
