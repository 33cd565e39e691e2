"""The metrics file read back with Prometheus's own text parser: exact, typed, carried over."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from importer.cli.metrics import LAST_SUCCESS, RunOutcome, previous_last_success, write_metrics
from importer.models import ImportStats

ENDED = 1_764_691_234.567  # an epoch with milliseconds: {:g} made it 1.76469e+09


def _parsed(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    families = text_string_to_metric_families(path.read_text(encoding="utf-8"))
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in families:
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def _big_night() -> ImportStats:
    return ImportStats(
        rows_read=12_345_678,
        delivered=12_345_670,  # 8 rows apart: {:g} printed both as 1.23457e+07
        failed=3,
        skipped={"unchanged": 5},
        objects_sent={"attributes": 12_345_670, "events": 98_765_432, "purchases": 7},
        requests=164_610,
        bytes_read=9_876_543_210,
        elapsed_s=14_814.123456,
    )


def test_counts_above_ten_million_and_the_timestamp_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "braze.prom"
    write_metrics(path, RunOutcome(_big_night(), exit_code=1, succeeded=True, ended_at=ENDED))
    values = _parsed(path)
    assert values["braze_import_read_rows"][()] == 12_345_678
    assert values["braze_import_delivered_records"][()] == 12_345_670
    assert values["braze_import_unsent_records"][()] == 0
    assert values["braze_import_accepted_objects"][(("kind", "events"),)] == 98_765_432
    assert values["braze_import_skipped_records"][(("reason", "unchanged"),)] == 5
    assert values["braze_import_read_bytes"][()] == 9_876_543_210
    assert values["braze_import_duration_seconds"][()] == 14_814.123456
    assert values["braze_import_last_run_timestamp_seconds"][()] == ENDED
    assert values[LAST_SUCCESS][()] == ENDED
    assert values["braze_import_exit_code"][()] == 1


def test_every_metric_has_help_and_type_and_a_unit_in_its_name(tmp_path: Path) -> None:
    path = tmp_path / "braze.prom"
    write_metrics(path, RunOutcome(_big_night(), exit_code=0, succeeded=True, ended_at=ENDED))
    text = path.read_text(encoding="utf-8")
    families = list(text_string_to_metric_families(text))
    assert len(families) >= 18
    units = ("_rows", "_records", "_requests", "_objects", "_attributes", "_bytes", "_seconds")
    for family in families:
        assert f"# HELP {family.name} " in text and f"# TYPE {family.name} gauge" in text
        assert family.documentation and family.type == "gauge"
        assert family.name.endswith(units) or family.name == "braze_import_exit_code", family.name
    assert not list(tmp_path.glob("*.prom.*")), "the temporary file was renamed over, not left"


def test_last_success_carries_over_a_failed_night_and_moves_on_a_good_one(tmp_path: Path) -> None:
    path = tmp_path / "braze.prom"
    write_metrics(path, RunOutcome(ImportStats(), exit_code=0, succeeded=True, ended_at=ENDED))
    write_metrics(path, RunOutcome(ImportStats(), 2, succeeded=False, ended_at=ENDED + 86_400))
    values = _parsed(path)
    assert values[LAST_SUCCESS][()] == ENDED
    assert values["braze_import_last_run_timestamp_seconds"][()] == ENDED + 86_400
    assert values["braze_import_exit_code"][()] == 2
    write_metrics(path, RunOutcome(ImportStats(), 1, succeeded=True, ended_at=ENDED + 172_800))
    assert previous_last_success(path) == ENDED + 172_800


@pytest.mark.parametrize("previous", [None, "not metrics at all {\n", "braze_import_x 1\n"])
def test_no_known_success_leaves_the_metric_out(tmp_path: Path, previous: str | None) -> None:
    path = tmp_path / "braze.prom"
    if previous is not None:
        path.write_text(previous, encoding="utf-8")
    write_metrics(path, RunOutcome(ImportStats(), 75, succeeded=False, ended_at=ENDED))
    values = _parsed(path)
    assert LAST_SUCCESS not in values and values["braze_import_exit_code"][()] == 75
