"""Command-line flags generated from the settings' metadata (:func:`napari_volseg.validation.setting`), the same
metadata the napari forms are built from: every setting of a dataclass gets ``--name-with-dashes`` with the form
tooltip's help, bounds and choices. An unset flag keeps what the preset (or model) says; ``none`` clears a setting
that may be empty (``--minutes none``). Values are checked by the settings themselves, one line each."""

from __future__ import annotations

import argparse
import dataclasses
import typing

from napari_volseg.validation import describe, setting_types, unwrap_optional

NONE = "none"


class _Cleared:
    """A flag given as ``none``: the setting is set to None (not merely left unset)."""

    def __repr__(self) -> str:
        return NONE


CLEARED = _Cleared()


def _parse(kind: type, optional: bool):
    def parse(text: str):
        if optional and text.lower() == NONE:
            return CLEARED
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_settings(parser: argparse.ArgumentParser, cls: type, title: str, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of settings dataclass ``cls`` (but ``skip``), in an argument group ``title``."""
    group = parser.add_argument_group(title)
    hints = setting_types(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, optional = unwrap_optional(hints[field.name])
        kwargs: dict = {"default": None, "dest": field.name, "help": describe(field)}
        if optional:
            kwargs["help"] += f" [{NONE}: empty]"
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            args = typing.get_args(kind)
            variadic = args[-1] is Ellipsis
            kwargs.update(type=_parse(args[0], optional), metavar=args[0].__name__.upper())
            kwargs["nargs"] = "*" if variadic else len(args)
        elif kind is str:
            if field.metadata.get("choices"):
                kwargs["choices"] = tuple(field.metadata["choices"])
        else:
            kwargs.update(type=_parse(kind, optional), metavar=kind.__name__.upper())
        group.add_argument(flag(field.name), **kwargs)


def given(args: argparse.Namespace, cls: type) -> dict:
    """The settings of ``cls`` given on the command line (``none`` as None), to override a preset's."""
    values = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = None if any(v is CLEARED for v in value) else tuple(value)
        values[field.name] = None if value is CLEARED else value
    return values
