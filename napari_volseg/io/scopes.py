"""Which cases of a task a prediction runs on: the scopes the Predict tab offers, decided here."""

from __future__ import annotations

from collections.abc import Sequence

from napari_volseg.errors import TaskFormatError
from napari_volseg.io.decathlon import Case, Task

NEVER_TRAINED_ON = "cases it never trained on"
SCOPES = ("current case", NEVER_TRAINED_ON, "validation cases", "all cases")
"""What a task's prediction runs on. "validation cases" are the training settings' split, which a pretrained model's
training cases may overlap (they are starred); "cases it never trained on" are the labelled cases its checkpoint
does not list."""


def cases_in_scope(
    task: Task, scope: str, *, current: str | None = None, validation: Sequence[Case] = (), trained=frozenset()
) -> list[str]:
    """The ids of ``task``'s cases a prediction over ``scope`` (:data:`SCOPES`) runs on: the ``current`` case (else
    the first), the labelled cases outside ``trained`` (a model that lists none is one line), the ``validation``
    cases, or all cases with the unlabelled ones."""
    if scope == "current case":
        return [current] if current else [task.cases[0].id]
    if scope == NEVER_TRAINED_ON:
        if not trained:
            raise TaskFormatError(
                f"this model does not list the cases of {task.name} it trained on: choose 'all cases'"
            )
        return [c.id for c in task.cases if c.id not in trained]
    if scope == "validation cases":
        if not validation:
            raise TaskFormatError("the training settings hold out no validation cases: choose another scope")
        return [c.id for c in validation]
    return [c.id for c in task.cases + task.test_cases]
