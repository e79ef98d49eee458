"""Fuzzed presets (types, ranges, missing and unknown keys), overrides, plans and YAML text: each is a
working settings object or one SettingsError line, never another exception."""

import dataclasses
import math

import pytest
import yaml
from conftest import one_line_volseg_error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from napari_volseg.config import InferConfig, PlanSettings, Preset, TrainConfig, load_preset, preset_from_dict
from napari_volseg.planning import Plan

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

anything = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=6) | st.just(10**400),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=5,
)


def near_bounds(f: dataclasses.Field) -> st.SearchStrategy:
    """Values a user would plausibly type for field ``f``: its default, its bounds and just past them."""
    meta = f.metadata
    edges = [f.default] + list(meta.get("choices", ())) + ["bogus"]
    for bound in (meta.get("min"), meta.get("max")):
        if bound is not None:
            edges += [bound, bound - 1, bound + 1, bound * 0.5, float(bound)]
    scalar = st.sampled_from(edges)
    return scalar | st.lists(scalar, min_size=0, max_size=4) | st.integers(-5, 300)


def section(cls) -> st.SearchStrategy:
    fields = {f.name: near_bounds(f) | anything for f in dataclasses.fields(cls)}
    known = st.fixed_dictionaries({}, optional=fields)
    return known | st.builds(lambda d, k, v: {**d, k: v}, known, st.text(min_size=1, max_size=8), anything) | anything


presets = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=8) | anything,
        "model": st.sampled_from(["cpu-lean", "seed-net1", "nope"]),
        "plan": section(PlanSettings),
        "train": section(TrainConfig),
        "infer": section(InferConfig),
        "extra": anything,
    },
)


def _satisfies_its_metadata(obj) -> None:
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert math.isfinite(v), f.name
                assert meta.get("min") is None or v >= meta["min"], f.name
                assert meta.get("max") is None or v <= meta["max"], f.name
            if "choices" in meta:
                assert v in meta["choices"], f.name


@FUZZ
@given(presets)
def test_fuzzed_presets_build_or_fail_with_one_line(document):
    preset = one_line_volseg_error(lambda: preset_from_dict(document, where="fuzz.yaml"))
    if preset is not None:
        for part in (preset.plan, preset.train, preset.infer):
            _satisfies_its_metadata(part)
        assert preset_from_dict(preset.to_dict()) == preset  # what a checkpoint stores reads back the same


@FUZZ
@given(section(TrainConfig))
def test_fuzzed_cli_and_form_overrides_build_or_fail_with_one_line(values):
    base = load_preset("fast-cpu")
    if isinstance(values, dict) and all(isinstance(k, str) for k in values):
        preset = one_line_volseg_error(lambda: base.with_overrides(**values))
        if preset is not None:
            _satisfies_its_metadata(preset.train)


@FUZZ
@given(section(Plan).map(lambda d: {"target_spacing": [1.5, 1.0, 1.0], **d} if isinstance(d, dict) else d))
def test_fuzzed_checkpoint_plans_build_or_fail_with_one_line(values):
    plan = one_line_volseg_error(lambda: Plan.from_dict(values))
    if plan is not None:
        _satisfies_its_metadata(plan)
        assert Plan.from_dict(plan.to_dict()).hash == plan.hash


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80) | presets.map(lambda d: yaml.safe_dump(d, default_flow_style=None)))
def test_fuzzed_yaml_files_load_or_fail_with_one_line(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    preset = one_line_volseg_error(lambda: load_preset(path))
    assert preset is None or isinstance(preset, Preset)
