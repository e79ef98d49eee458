"""Which case next: rank unlabelled cases by the model's uncertainty, most uncertain first.

The measure is the **expected edit share**: the number of voxels the model itself expects to have
wrong, sum over voxels of ``1 - max_c p_c`` (the probability that the voxel's predicted class is not
its true one), divided by the number of voxels it predicts as foreground. It estimates the quantity
the annotator pays for and :mod:`~napari_volseg.annotate.edits` reports after each accept (voxels
edited as a share of the label), it needs one forward pass per case (disagreement between mirrored
passes would need 2^k passes, and our presets train without mirroring), and dividing by the
predicted size keeps a large organ from ranking first merely for its size. A case where the model
finds nothing at all ranks first (score infinity): the annotator must draw it all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from napari_volseg.engine.infer import Predictor
from napari_volseg.events import Progress
from napari_volseg.io.decathlon import Case
from napari_volseg.metrics import expected_edit_share


@dataclass(frozen=True)
class Ranked:
    """One case's uncertainty ``score`` (expected edit share; ``inf``: nothing found) and predicted volume."""

    case_id: str
    score: float
    predicted_ml: float

    @property
    def found_nothing(self) -> bool:
        return math.isinf(self.score)


def rank_cases(predictor: Predictor, cases: Sequence[Case]) -> Iterator[Progress | list[Ranked]]:
    """Predict each case (yielding :class:`Progress`), then yield the ranking, most uncertain first."""
    ranked = []
    for i, case in enumerate(cases):
        image = case.load_image()
        prediction = predictor.predict(image, keep_probabilities=True)
        score = expected_edit_share(prediction.probabilities)
        ranked.append(Ranked(case.id, score, float((prediction.labels > 0).sum()) * image.voxel_ml))
        yield Progress(done=i + 1, total=len(cases), item=case.id)
    yield sorted(ranked, key=lambda r: (-r.score, r.case_id))


def rank_with(checkpoint, cases: Sequence[Case]) -> Iterator[Progress | list[Ranked]]:
    """:func:`rank_cases` with the model at ``checkpoint`` (a file or a loaded checkpoint), released at the end."""
    predictor = Predictor(checkpoint)
    try:
        yield from rank_cases(predictor, cases)
    finally:
        predictor.release()
