"""Settings dataclasses check their own fields: types and allowed ranges from each field's metadata.

Every settings dataclass (``PlanSettings``, ``TrainConfig``, ``InferConfig``, ``Plan``) declares its
fields as ``field(default=..., metadata={...})`` and calls :func:`check_fields` from ``__post_init__``,
so a value is refused wherever the object is built (YAML presets, CLI flags through
``Preset.with_overrides``, widget forms, checkpoint metadata) with the same one-line
:class:`~napari_volseg.errors.SettingsError`, e.g. ``train.lr must be > 0 (got -1.0)``.

Metadata keys (the widget forms are generated from the same keys):

- ``"help"``: a one-line description (a tooltip);
- ``"min"`` / ``"max"``: inclusive numeric bounds; for tuple fields they apply to every element;
- ``"min_exclusive"`` / ``"max_exclusive"``: ``True`` makes that bound exclusive;
- ``"choices"``: a tuple of the allowed values of a str field.

Types come from the annotations: ``bool``, ``int`` (a float is refused, a bool too), ``float``
(finite; an int becomes a float), ``str``, ``tuple[T, T, T]`` (that many elements; a list becomes
a tuple), ``tuple[T, ...]`` and ``X | None``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import numbers
import types
import typing
from collections.abc import Mapping

from napari_volseg.errors import SettingsError

T = typing.TypeVar("T")


class _Invalid(Exception):
    """One value broke one rule; the caller names the field."""


def setting(default: object, help: str, **rules: object) -> object:
    """A settings field: its default, a one-line ``help`` and its rules (``min``, ``max``,
    ``min_exclusive``, ``max_exclusive``, ``choices``), stored as the field's metadata."""
    return dataclasses.field(default=default, metadata={"help": help, **rules})


def describe(field: dataclasses.Field, choices: tuple | None = None) -> str:
    """A setting's one-line help with its bounds and choices (or the narrower ``choices`` a face offers: this
    machine's devices): the form's tooltip and the CLI flag's help alike."""
    meta = {**(field.metadata or {}), **({"choices": choices} if choices else {})}
    rules = []
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None or hi is not None:

        def bound(x) -> str:
            return "(" + ", ".join(map(_number, x)) + ")" if isinstance(x, (list, tuple)) else _number(x)

        low = f"{bound(lo)} {'<' if meta.get('min_exclusive') else '<='} " if lo is not None else ""
        high = f" {'<' if meta.get('max_exclusive') else '<='} {bound(hi)}" if hi is not None else ""
        rules.append(f"{low}value{high}")
    if meta.get("choices"):
        rules.append("one of " + ", ".join(map(str, meta["choices"])))
    text = str(meta.get("help", ""))
    return f"{text} ({'; '.join(rules)})" if rules else text


def unwrap_optional(annotation) -> tuple[object, bool]:
    """``(T, True)`` for a setting typed ``T | None``, else ``(annotation, False)``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def setting_types(cls: type) -> dict[str, object]:
    """The resolved type of each field of settings dataclass ``cls``."""
    return _hints(cls)


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def show(value: object) -> str:
    """A value as the user wrote it, short enough for one line (lists as ``[0, -4, 8]``)."""
    if isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show(v) for v in value) + "]"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return short(text)


def short(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _range_error(x: float, meta: Mapping) -> str | None:
    """The bound ``x`` breaks, as a rule (``must be > 0``), or None when it is in range."""
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None:
        if meta.get("min_exclusive") and x <= lo:
            return f"must be > {_number(lo)}"
        if x < lo:
            return f"must be >= {_number(lo)}"
    if hi is not None:
        if meta.get("max_exclusive") and x >= hi:
            return f"must be < {_number(hi)}"
        if x > hi:
            return f"must be <= {_number(hi)}"
    return None


def _scalar(value: object, kind: type, meta: Mapping) -> object:
    """``value`` checked against type ``kind`` and the range or choices in ``meta``, normalised."""
    if kind is bool:
        if not isinstance(value, bool):
            raise _Invalid("must be true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise _Invalid("must be text")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise _Invalid("must be one of " + ", ".join(map(repr, choices)))
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _Invalid("must be a whole number")
        value = int(value)
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Invalid("must be a number")
        try:
            value = float(value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise _Invalid("must be a finite number")
    else:  # pragma: no cover - a settings field with a type this module does not know
        raise TypeError(f"unsupported settings type {kind!r}")
    broken = _range_error(value, meta)
    if broken:
        raise _Invalid(broken)
    return value


def _check(value: object, hint: object, meta: Mapping) -> object:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        hint, origin = args[0], typing.get_origin(args[0])
    if origin is tuple:
        args = typing.get_args(hint)
        kind = args[0]
        length = None if len(args) == 2 and args[1] is Ellipsis else len(args)
        what = "numbers" if kind in (int, float) else "values"
        if not isinstance(value, (list, tuple)):
            raise _Invalid(f"must be a list of {length or ''} {what}".replace("  ", " "))
        if length is not None and len(value) != length:
            raise _Invalid(f"must be a list of {length} {what}")
        try:
            return tuple(_scalar(v, kind, meta) for v in value)
        except _Invalid as exc:
            raise _Invalid(f"values {exc}") from None
    return _scalar(value, hint, meta)


def check_fields(obj: object, section: str) -> None:
    """Check (and normalise in place) every field of the frozen settings dataclass ``obj``.

    Raises :class:`SettingsError` naming ``section.field``, the rule and the value given.
    Lists become tuples and ints in float fields become floats, so equal settings compare and
    hash equal however they were written.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        try:
            checked = _check(value, hints[f.name], f.metadata)
        except _Invalid as exc:
            raise SettingsError(f"{section}.{f.name} {exc} (got {show(value)})") from None
        object.__setattr__(obj, f.name, checked)


def settings_from_dict(cls: type[T], data: object, section: str, *, strict: bool = True) -> T:
    """Build settings dataclass ``cls`` from a mapping (a YAML section, checkpoint metadata).

    Missing keys take the defaults; unknown keys are a :class:`SettingsError` when ``strict``
    (presets), and skipped otherwise (metadata written by another version of the package).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SettingsError(f"{section} must be a mapping of settings (got {show(data)})")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown and strict:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(names)}"
        raise SettingsError(f"{section}: unknown setting(s) {short(', '.join(map(repr, unknown)))}{hint}")
    return cls(**{k: v for k, v in data.items() if k in names})
