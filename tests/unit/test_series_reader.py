"""read_series (one series as a row or a column, or UCR lines, at a model's length) and the
class names a UCR folder may carry in classes.json."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from meddx.data.ecg import SERIES_CLASSES_FILE, load_series_dataset, read_series
from meddx.errors import InputFileError
from tests.ecg_helpers import write_ucr


def test_layouts_give_the_same_series(tmp_path):
    values = np.linspace(-1, 1, 8)
    (tmp_path / "row.csv").write_text(",".join(map(str, values)) + "\n")
    (tmp_path / "spaced.txt").write_text("  " + "   ".join(map(str, values)) + "  \n\n")
    (tmp_path / "column.txt").write_text("\n".join(map(str, values)) + "\n")
    (tmp_path / "tabs.tsv").write_text("\t".join(map(str, values)) + "\n")
    (tmp_path / "ucr.txt").write_text(" ".join(map(str, [-1.0, *values])) + "\n")
    for name, layout in [("row.csv", "row"), ("spaced.txt", "row"), ("column.txt", "column"),
                         ("tabs.tsv", "row"), ("ucr.txt", "ucr")]:
        series = read_series(tmp_path / name, 8)
        assert series.layout == layout, name
        np.testing.assert_allclose(series.values, values[None].astype(np.float32))
        assert series.values.dtype == np.float32
        assert (series.labels is None) == (layout != "ucr")
    assert read_series(tmp_path / "ucr.txt", 8).labels.tolist() == [-1.0]


def test_many_series_and_the_limit(tmp_path):
    path = write_ucr(tmp_path / "Toy_TEST.txt", 5, length=16)
    series = read_series(path, 16)
    assert series.values.shape == (5, 16) and series.labels.tolist() == [1, 2, 1, 2, 1]
    with pytest.raises(InputFileError, match="holds 5 series; give at most 1 per file"):
        read_series(path, 16, max_series=1)


@pytest.mark.parametrize(("text", "problem"), [
    ("1,2,3\n", "line 1: 3 values; this model classifies series of 8 values"),
    ("1\n2\n3\n", "3 values in one column; this model classifies series of 8 values"),
    ("1,2,x,4,5,6,7,8\n", "line 1: non-numeric value 'x' (value 3)"),
    ("1,2,,4,5,6,7,8\n", "line 1: empty cell (value 3)"),
    ("1 2 3 4 5 6 7 inf\n", "line 1: value is not a finite number"),
    ("1\n2\nnan\n4\n5\n6\n7\n8\n", "line 3: value is not a finite number"),
    ("\n \n", "no values in the file"),
    ("1 2 3 4 5 6 7 8\n1 2 3 4 5 6 7 8 9\n", "line 2: 9 values, but line 1 has 8"),
])
def test_bad_files_name_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputFileError, match=re.escape(problem)) as error:
        read_series(path, 8)
    assert str(path) in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        read_series(tmp_path / "nope.csv", 8)


def test_classes_json_names_the_label_values(tmp_path):
    folder = tmp_path / "Exported"
    folder.mkdir()
    write_ucr(folder / "series_TRAIN.txt", 20, length=16)
    assert load_series_dataset(folder).class_names == ["1", "2"]
    (folder / SERIES_CLASSES_FILE).write_text(json.dumps(
        {"class_names": ["early", "late"], "label_values": [1, 2]}))
    dataset = load_series_dataset(folder)
    assert dataset.class_names == ["early", "late"] and dataset.label_values == [1.0, 2.0]
    (folder / SERIES_CLASSES_FILE).write_text(json.dumps(
        {"class_names": ["early", "late"], "label_values": [1, 3]}))
    with pytest.raises(Exception, match=r"label value\(s\) \[2.0\] are not among the classes"):
        load_series_dataset(folder)
    (folder / SERIES_CLASSES_FILE).write_text('{"class_names": ["a"]}')
    with pytest.raises(InputFileError, match="needs class_names and label_values"):
        load_series_dataset(folder)
