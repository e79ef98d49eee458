"""Settings forms generated from the config dataclasses (``TrainConfig``, ``PlanSettings``) with magicgui.

A field gets its widget from its type, and from its ``metadata`` where present, with the keys
:mod:`napari_volseg.validation` checks: ``"help"`` (the tooltip, with the bounds and choices: :func:`~napari_volseg.validation.describe`, as the CLI's help), ``"min"`` / ``"max"`` (elementwise for tuples),
``"min_exclusive"`` / ``"max_exclusive"`` (``True``: that bound is open; an int box then stops one short of it, a
float box at it, and the dataclass's own check refuses the bound itself on apply), ``"choices"``. A new setting in
``config.py`` therefore appears in the GUI, the CLI (:mod:`napari_volseg.cli.settings`) and the checkpoint from its
one definition. ``X | None``
fields show their "none" (``auto``, ``no limit``) as the spin box's lowest value. Fields not named ``basic`` sit
behind an "Advanced" expander, so the dock stays short.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any

from magicgui import widgets as mg
from psygnal import Signal
from qtpy.QtWidgets import QAbstractSpinBox, QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_volseg._napari.widgets.common import compact
from napari_volseg.validation import describe, unwrap_optional

INT_MAX = 100_000_000
FLOAT_MAX = 1e6


def _bound(meta: dict, key: str, index: int | None):
    value = meta.get(key)
    if isinstance(value, list | tuple):
        return value[index or 0]
    return value


def _float_step(value: float, lo: float) -> float:
    """A step of about a tenth of the value's magnitude (1e-3 for 0.01, 0.1 for 1.5)."""
    ref = abs(value) or abs(lo) or 1.0
    return 10.0 ** math.floor(math.log10(ref) - 1) if ref < 1 else 10.0 ** max(-1, math.floor(math.log10(ref)) - 1)


class FieldWidget:
    """One dataclass field as a magicgui widget, converting between the field's value and the widget's."""

    def __init__(self, field: dataclasses.Field, annotation, label: str, none_text: str, choices=None):
        self.name = field.name
        self.meta = dict(field.metadata or {})
        self.type, self.optional = unwrap_optional(annotation)
        self.none_text = none_text
        # the form's own choices (what this machine has: available_devices()) narrow the field's (every device)
        self.choices = tuple(choices or self.meta.get("choices") or ())
        self.parts: list[mg.ValueWidget] = []
        self.widget = self._build(label)
        self.widget.name = self.name
        self.widget.label = label
        self.widget.tooltip = describe(field, tuple(choices or ())) or None
        for part in self.parts:
            compact(part.native)

    # -- building ------------------------------------------------------------------------------

    def _scalar(self, kind, index: int | None, label: str = "") -> mg.ValueWidget:
        if kind is bool:
            return mg.CheckBox(text=label)
        if kind is str:
            return mg.ComboBox(choices=list(self.choices)) if self.choices else mg.LineEdit()
        lo = _bound(self.meta, "min", index)
        hi = _bound(self.meta, "max", index)
        if kind is int:
            lo = int(lo) + bool(self.meta.get("min_exclusive")) if lo is not None else (1 if self.optional else 0)
            hi = int(hi) - bool(self.meta.get("max_exclusive")) if hi is not None else INT_MAX
            if not self.optional:
                return mg.SpinBox(min=lo, max=hi)
            # a QDoubleSpinBox with no decimals: unlike magicgui's int box it shows the "none" text
            widget = mg.FloatSpinBox(min=lo - 1, max=hi, step=1)
            widget.native.setDecimals(0)
        else:
            lo = float(lo if lo is not None else 0.0)
            widget = mg.FloatSpinBox(min=lo, max=float(hi if hi is not None else FLOAT_MAX))
        if self.optional:  # the lowest value stands for None
            widget.native.setSpecialValueText(self.none_text)
        return widget

    def _build(self, label: str):
        origin = typing.get_origin(self.type)
        if origin is tuple:
            args = typing.get_args(self.type)
            if len(args) == 2 and args[1] is Ellipsis:  # a set of axes: one tick box per choice
                names = self.meta.get("choice_names") or ("z", "y", "x")
                self.parts = [
                    mg.CheckBox(text=str(names[i] if i < len(names) else c)) for i, c in enumerate(self.choices)
                ]
            else:
                self.parts = [self._scalar(kind, i) for i, kind in enumerate(args)]
                for part in self.parts:  # three boxes in a row: room for the digits, not for +/- buttons
                    part.native.setButtonSymbols(QAbstractSpinBox.NoButtons)
            return mg.Container(widgets=self.parts, layout="horizontal", labels=False, label=label)
        widget = self._scalar(self.type, None, label)
        self.parts = [widget]
        widget.label = label
        return widget

    # -- values --------------------------------------------------------------------------------

    def _is_none(self, part) -> bool:
        return self.optional and isinstance(part, mg.SpinBox | mg.FloatSpinBox) and part.value <= part.min

    def _number(self, part, kind):
        return int(round(part.value)) if kind is int else part.value

    def get(self):
        origin = typing.get_origin(self.type)
        if origin is tuple and typing.get_args(self.type)[-1] is Ellipsis:
            return tuple(c for c, box in zip(self.choices, self.parts, strict=True) if box.value)
        if origin is tuple:
            if self.optional and any(self._is_none(p) for p in self.parts):
                return None
            return tuple(self._number(p, k) for p, k in zip(self.parts, typing.get_args(self.type), strict=True))
        part = self.parts[0]
        return None if self._is_none(part) else self._number(part, self.type)

    def set(self, value) -> None:
        origin = typing.get_origin(self.type)
        if origin is tuple and typing.get_args(self.type)[-1] is Ellipsis:
            for choice, box in zip(self.choices, self.parts, strict=True):
                box.value = choice in (value or ())
            return
        values = value if origin is tuple else (value,)
        for i, part in enumerate(self.parts):
            v = None if value is None else values[i]
            if v is None:
                part.value = part.min
                continue
            if isinstance(part, mg.ComboBox) and v not in part.choices:
                v = part.choices[0]  # e.g. a preset's "cuda" where only the CPU is present
            if isinstance(part, mg.FloatSpinBox) and part.native.decimals() > 0:
                part.step = _float_step(float(v), part.min)
                part.native.setDecimals(max(2, part.native.decimals()))
            part.value = v


class DataclassForm(QWidget):
    """A form for dataclass ``cls``: ``basic`` fields on top, the others under "Advanced" (hidden fields omitted)."""

    changed = Signal()

    def __init__(
        self,
        cls,
        basic: tuple[str, ...],
        *,
        hidden: tuple[str, ...] = (),
        labels: dict[str, str] | None = None,
        none_text: dict[str, str] | None = None,
        choices: dict[str, tuple] | None = None,
        parent=None,
    ):
        super().__init__(parent)
        self.cls = cls
        hints = typing.get_type_hints(cls)
        labels, none_text, choices = labels or {}, none_text or {}, choices or {}
        self.fields: dict[str, FieldWidget] = {}
        for f in dataclasses.fields(cls):
            if f.name in hidden:
                continue
            label = labels.get(f.name, f.name.replace("_", " "))
            self.fields[f.name] = FieldWidget(
                f, hints[f.name], label, none_text.get(f.name, "auto"), choices.get(f.name)
            )
        self.basic = mg.Container(widgets=[self.fields[n].widget for n in basic if n in self.fields])
        advanced_names = [n for n in self.fields if n not in basic]
        self.advanced = mg.Container(widgets=[self.fields[n].widget for n in advanced_names])
        self.expander = QCollapsible("Advanced")
        self.expander.addWidget(self.advanced.native)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for container in (self.basic, self.advanced):
            container.margins = (0, 0, 0, 0)
            container.changed.connect(lambda *_: self._emit())
        layout.addWidget(self.basic.native)
        if advanced_names:
            layout.addWidget(self.expander)
        self._quiet = False

    def _emit(self) -> None:
        if not self._quiet:
            self.changed.emit()

    def show_values(self, obj) -> None:
        """Show the field values of dataclass instance ``obj`` (emits ``changed`` once)."""
        self._quiet = True
        try:
            for name, field in self.fields.items():
                field.set(getattr(obj, name))
        finally:
            self._quiet = False
        self.changed.emit()

    def values(self) -> dict[str, Any]:
        return {name: field.get() for name, field in self.fields.items()}

    def apply(self, base):
        """``base`` (an instance of the form's dataclass) with the values shown."""
        return dataclasses.replace(base, **self.values())
