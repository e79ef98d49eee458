"""Issue 26 item 7: fine-tune versions compared on the same cases (v001 read "val Dice -" beside a shipped model
trained without validation): the labelled cases no version trained on, scored once and kept beside the versions."""

from __future__ import annotations

import shutil

import pytest

from napari_volseg.annotate.compare import SCORES, Comparison, common_cases, compare
from napari_volseg.engine.provenance import Provenance
from napari_volseg.errors import VolsegError
from napari_volseg.events import Progress
from napari_volseg.io import decathlon


def test_versions_are_scored_on_the_same_unseen_cases_and_the_scores_are_kept(tiny_ct_task, tiny_checkpoint, tmp_path):
    task = decathlon.load_task(tiny_ct_task)
    trained = Provenance.read(tiny_checkpoint).trained_in(task.name)
    v1, v2 = (shutil.copy(tiny_checkpoint, tmp_path / name) for name in ("v001.safetensors", "v002.safetensors"))
    cases = common_cases(task, [v1, v2])
    assert cases and not {c.id for c in cases} & trained
    events = list(compare(task, [v1, v2], tmp_path))
    [result] = [e for e in events if isinstance(e, Comparison)]
    assert sum(isinstance(e, Progress) for e in events) == 2 * len(cases)
    assert result.cases == [c.id for c in cases] and set(result.scores) == {v1, v2}
    assert result.scores[v1] == pytest.approx(result.scores[v2]) and 0.0 <= result.scores[v1] <= 1.0  # same weights
    assert (tmp_path / SCORES).is_file()
    again = list(compare(task, [v1, v2], tmp_path))  # kept: nothing predicted again
    assert [type(e) for e in again] == [Comparison] and again[0].scores == result.scores


def test_no_case_left_to_compare_on_is_one_line(tiny_ct_task, tiny_checkpoint, tmp_path, monkeypatch):
    task = decathlon.load_task(tiny_ct_task)
    everything = Provenance("m", task.name, frozenset(c.id for c in task.cases))
    monkeypatch.setattr(Provenance, "read", classmethod(lambda cls, path: everything))
    with pytest.raises(VolsegError, match="none is left to compare them on"):
        list(compare(task, [tiny_checkpoint], tmp_path))


def test_a_task_without_labelled_cases_says_to_accept_one_first(tiny_ct_task, tiny_checkpoint, tmp_path):
    """The walkthrough's task of unlabelled scans read "every labelled case ... trained one of these versions"."""
    import dataclasses

    task = dataclasses.replace(decathlon.load_task(tiny_ct_task), cases=[])  # its scans all unlabelled
    with pytest.raises(VolsegError, match="has no fully labelled case to compare the versions on: Accept a corrected"):
        list(compare(task, [tiny_checkpoint], tmp_path))
