"""Clinical-record tables: reading with/without header, schema inference and overrides."""

import json

import numpy as np
import pytest

from meddx.data.loading import load_dataset
from meddx.data.tabular import (
    TabularDataset,
    TabularSchema,
    can_read_table,
    load_tabular_dataset,
    read_raw_table,
)
from meddx.errors import ConfigError, DataError, InputFileError

ROWS = [
    "6,148,72,0,33.6,yes,1",
    "1,85,66,94,26.6,no,0",
    "8,183,?,0,23.3,yes,1",
    "1,89,66,168,28.1,no,0",
    "0,137,40,0,43.1,no,1",
    "5,116,74,0,25.6,yes,0",
    "3,0,50,88,31.0,no,1",
    "10,115,0,0,35.3,yes,0",
]
HEADER = "Pregnancies,Glucose,BloodPressure,Insulin,BMI,Smoker,Outcome"


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_header_detection_and_schema_inference(tmp_path):
    data = load_tabular_dataset(write(tmp_path / "t.csv", [HEADER, *ROWS]))
    schema = data.schema
    assert schema.header and schema.target == "Outcome"
    assert data.class_names == ["0", "1"]
    kinds = {c.name: (c.kind, c.zero_means_missing) for c in schema.columns}
    assert kinds["Pregnancies"] == ("numeric", False)  # zero pregnancies is real
    assert kinds["Glucose"] == ("numeric", True)  # zero glucose is impossible
    assert kinds["BloodPressure"] == ("numeric", True)
    assert kinds["Smoker"][0] == "categorical"
    frame = data.split("all").features
    assert np.isnan(frame["BloodPressure"][2])  # "?"
    assert np.isnan(frame["Glucose"][6])  # impossible zero
    assert frame["Pregnancies"][4] == 0  # a real zero stays
    assert schema.column("Glucose").minimum == 85


def test_headerless_tsv_and_schema_sidecar(tmp_path):
    path = write(tmp_path / "t.tsv", [r.replace(",", "\t") for r in ROWS])
    header, rows = read_raw_table(path)
    assert header is None and len(rows) == len(ROWS)
    sidecar = tmp_path / "t.tsv.schema.json"
    sidecar.write_text(json.dumps({
        "column_order": ["preg", "glucose", "bp", "insulin", "bmi", "smoker", "diabetic"],
        "target": "diabetic",
        "columns": [{"name": "preg", "kind": "categorical"}]}))
    data = load_tabular_dataset(path)
    assert data.schema.target == "diabetic"
    assert data.schema.column("preg").kind == "categorical"
    assert data.schema.column("glucose").zero_means_missing
    assert data.split("all").sources[0] == "t.tsv:1"


def test_saved_schema_round_trips(tmp_path):
    data = load_tabular_dataset(write(tmp_path / "t.csv", [HEADER, *ROWS]))
    saved = data.schema.save(tmp_path / "schema.json")
    again = TabularSchema.from_dict(json.loads(saved.read_text()))
    assert again == data.schema


def test_bad_tables_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="Glucose.*non-numbers"):
        load_tabular_dataset(write(tmp_path / "a.csv", [HEADER, *ROWS,
                                                        "1,high,66,1,28.1,no,0"]))
    with pytest.raises(DataError, match="single class"):
        load_tabular_dataset(write(tmp_path / "b.csv", [HEADER, *[r[:-1] + "1" for r in ROWS]]))
    with pytest.raises(InputFileError, match="line 3 has"):
        load_tabular_dataset(write(tmp_path / "c.csv", [HEADER, ROWS[0], "1,2"]))
    with pytest.raises(InputFileError, match="empty"):
        load_tabular_dataset(write(tmp_path / "d.csv", [""]))
    bad = tmp_path / "e.csv"
    write(bad, [HEADER, *ROWS])
    (tmp_path / "e.csv.schema.json").write_text(json.dumps({"nonsense": 1}))
    with pytest.raises(ConfigError, match="unknown schema key"):
        load_tabular_dataset(bad)


def test_splits_are_seeded_and_stratified(tmp_path):
    rng = np.random.default_rng(0)
    lines = [HEADER] + [f"{rng.integers(0, 9)},{rng.integers(80, 190)},70,0,30,no,{i % 3 == 0:d}"
                        for i in range(90)]
    data = load_tabular_dataset(write(tmp_path / "big.csv", lines))
    sizes = data.split_sizes(seed=1)
    assert sum(sizes.values()) == 90 and sizes["test"] == 18
    test1, test2 = data.split("test", seed=1), data.split("test", seed=1)
    assert test1.sources == test2.sources
    assert abs(test1.labels.mean() - 1 / 3) < 0.1


def test_loading_registry_routes_tables_not_manifests(tmp_path):
    table = write(tmp_path / "records.csv", [HEADER, *ROWS])
    manifest = write(tmp_path / "manifest.csv", ["path,label", "a.png,0"])
    assert can_read_table(table) and not can_read_table(manifest)
    assert isinstance(load_dataset(table), TabularDataset)


def test_carving_keeps_single_case_classes_for_training():
    import numpy as np

    from meddx.data.datasets import stratified_parts

    labels = np.array([0] * 40 + [1] * 40 + [2])  # class 2 has one case: cannot be stratified
    for seed in range(20):
        rest, carved = stratified_parts(labels, 0.2, seed)
        assert 80 in rest and 80 not in carved
        assert len(rest) + len(carved) == len(labels)
        assert set(rest).isdisjoint(carved)
