"""Result rows: one schema for the Predict table, its CSV and `volseg evaluate`."""

import numpy as np

from napari_volseg import metrics
from napari_volseg.evaluate import MODEL_FIELDS, ROW_FIELDS, CaseResult, result_rows, score_rows, summarise, write_csv


def test_one_row_schema_for_table_csv_and_cli(tmp_path):
    scores = metrics.score_case(np.ones((4, 4, 4), np.uint8), np.ones((4, 4, 4), np.uint8), 2, (1.0, 1.0, 1.0))
    rows = score_rows("c1", scores, {0: "background", 1: "spleen"})
    assert [tuple(r) for r in rows] == [ROW_FIELDS] and rows[0]["name"] == "spleen" and rows[0]["dice"] == 1.0
    text = write_csv(rows, tmp_path / "t.csv").read_text().splitlines()
    assert text[0] == ",".join(ROW_FIELDS) and text[1].startswith("c1,1,spleen,1.0,")
    assert write_csv([], tmp_path / "empty.csv").read_text().strip() == ",".join(ROW_FIELDS)


def test_predicted_rows_name_their_model_and_whether_it_trained_on_the_case(tmp_path):
    labels = np.ones((4, 4, 4), np.uint8)
    scores = metrics.score_case(labels, labels, 2, (1.0, 1.0, 1.0))
    result = CaseResult("la_003", labels, None, scores, trained_on=True, model="/runs/heart/model.safetensors")
    rows = result_rows(result, {1: "left atrium"})
    text = write_csv(rows, tmp_path / "t.csv").read_text().splitlines()
    assert text[0] == ",".join(ROW_FIELDS + MODEL_FIELDS)
    assert text[1].startswith("la_003,1,left atrium,1.0,") and text[1].endswith(",/runs/heart/model.safetensors,True")
    mixed = score_rows("la_004", scores, {1: "left atrium"}) + rows  # a scored row first: the columns still come
    assert write_csv(mixed, tmp_path / "m.csv").read_text().splitlines()[0] == ",".join(ROW_FIELDS + MODEL_FIELDS)


def test_summary_means_dice_and_skips_undefined_hd95():
    rows = [
        {"label": 1, "dice": 0.5, "hd95": float("nan")},
        {"label": 1, "dice": 1.0, "hd95": 2.0},
        {"label": 2, "dice": 0.0, "hd95": float("nan")},
    ]
    summary = summarise(rows)
    assert summary[1] == {"dice": 0.75, "hd95": 2.0, "cases": 2}
    assert summary[2]["cases"] == 1 and np.isnan(summary[2]["hd95"])
