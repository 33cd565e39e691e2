"""Operations with --state, end to end over sockets: a file of increments run twice applies each
once; SIGKILL at random moments and resume (429s, 5xx, dropped connections) applies each once but
those in flight at a kill, SIGINT each exactly once; a second night's file applies its deltas."""

from __future__ import annotations

import io
import random
import signal
from collections import Counter
from pathlib import Path

import orjson
import pytest

from importer import ConfigError, ImportConfig, ReadOptions, retry_import, run_import
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread
from tests.end_to_end.test_operations import FAST, KEY
from tests.end_to_end.test_resume import _interrupt_until_done

MAPPING = """
[identity]
external_id = "id"
[attributes]
points = { column = "points", type = "integer", op = "inc" }
seen = { column = "tag", type = "array", op = "add" }
"""
KEYED = MAPPING + '[operations]\nkey = "txn"\n'


def _data(tmp_path: Path, rows: int, users: int, *, night: int = 1, pad: int = 0) -> dict[str, int]:
    """Row n: user n % users earns n % 7 + 1 points and the tag ``n<night>r<n>`` (which names
    the row in what the sandbox accepted). Returns each user's points."""
    lines = ["id,txn,points,tag,pad"]
    points: Counter[str] = Counter()
    for n in range(rows):
        user = f"u{n % users}"
        points[user] += n % 7 + 1
        lines.append(f"{user},T{night}-{n},{n % 7 + 1},n{night}r{n},{'p' * pad}")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dict(points)


def _applied(sandbox: Sandbox) -> Counter[str]:
    """How many times the sandbox applied each row's add (its tag)."""
    return Counter(
        tag
        for obj in sandbox.accepted("attributes")
        if isinstance(obj.get("seen"), dict)
        for tag in obj["seen"].get("add", ())
    )


def _points(sandbox: Sandbox, users: int) -> dict[str, int]:
    held = {}
    for n in range(users):
        profile = sandbox.profiles.get(f"external_id:u{n}")
        held[f"u{n}"] = profile.attributes.get("points", 0) if profile else 0
    return held


def _run(tmp_path: Path, sandbox: Sandbox, label: str) -> dict[str, object]:
    config = ImportConfig(
        (str(tmp_path / "data.csv"),),
        sandbox.url,
        KEY,
        mapping_path=tmp_path / "map.toml",
        run_dir=tmp_path / label,
        state_path=tmp_path / "ops.state",
        **FAST,  # type: ignore[arg-type]
    )
    report = run_import(config)
    summary: dict[str, object] = orjson.loads((report.run_dir / "summary.json").read_bytes())
    return summary


def test_the_same_file_twice_applies_each_increment_once_and_the_next_night_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")  # no key: fingerprint + line
    night1 = _data(tmp_path, 400, users=40)
    with sandbox_in_thread(SandboxSettings(profiles=True, p_500=0.05, seed=2)) as sandbox:
        first = _run(tmp_path, sandbox, "run1")
        again = _run(tmp_path, sandbox, "run2")
        assert _points(sandbox, 40) == night1
        assert set(_applied(sandbox).values()) == {1}
        night2 = _data(tmp_path, 400, users=40, night=2)  # same name, tonight's deltas
        second = _run(tmp_path, sandbox, "run3")
        held = _points(sandbox, 40)
    assert first["delivered"] == 400
    # Each run says at its start that, without a key, a re-exported file repeats operations.
    assert sum("no [operations] key" in r.getMessage() for r in caplog.records) == 3
    assert again["delivered"] == 0 and again["skipped"] == {"operation_delivered": 400}
    assert second["delivered"] == 400
    assert held == {user: night1[user] + night2[user] for user in night1}


def _interrupted(
    tmp_path: Path, sig: int, kills: int, seed: int, p_429: float, *extra: str, rate: int = 6000
) -> tuple[int, ...]:
    """Import under faults, interrupted ``kills`` times and resumed until done; returns the
    kills, the rows applied twice or more, the sum of those extra points, and the mismatches."""
    users = 150
    settings = SandboxSettings(
        profiles=True,
        latency_ms=5,
        p_429=p_429,  # each 429 pauses every worker for the sandbox's 1 s
        p_500=0.03,
        p_503=0.02,
        p_drop=0.03,
        p_drop_after_apply=0.0,  # a drop after applying is ambiguous: see --on-ambiguous
        seed=seed,
    )
    rows = 2400 if "2" in extra else 1500
    points = _data(tmp_path, rows, users, pad=900 if "2" in extra else 0)  # workers: > 2 MB
    with sandbox_in_thread(settings) as sandbox:
        landed, _ = _interrupt_until_done(
            tmp_path,
            sandbox,
            sig,
            kills,
            random.Random(seed),
            *("--rate", str(rate), "--concurrency", "4", "--batch-mode", "mau50"),
            *("--state", str(tmp_path / "ops.state"), *extra),
        )
        applied = _applied(sandbox)
        held = _points(sandbox, users)
    assert set(applied) == {f"n1r{n}" for n in range(rows)}, "an increment is missing"
    twice = {tag: count for tag, count in applied.items() if count > 1}
    extra_points = sum((int(tag[3:]) % 7 + 1) * (count - 1) for tag, count in twice.items())
    mismatched = sum(held[user] != points[user] for user in points)
    return landed, len(twice), extra_points, mismatched, sum(held.values()) - sum(points.values())


def test_sigkill_and_resume_apply_every_increment_once_but_those_in_flight(
    tmp_path: Path,
) -> None:
    (tmp_path / "map.toml").write_text(KEYED, encoding="utf-8")
    kills, twice, extra_points, _, surplus = _interrupted(
        tmp_path, signal.SIGKILL, 3, 21, 0.01, "--workers", "2"
    )
    assert kills >= 2  # the third may come after the end
    # In flight at a kill: at most --concurrency requests of 50 rows each (mau50).
    assert twice <= kills * 4 * 50
    assert surplus == extra_points  # every point beyond the sum is a row sent twice, no other


def test_sigint_and_resume_apply_every_increment_exactly_once(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    # 30 requests at 25/s: a drained first stop leaves most of the file for the second.
    kills, twice, _, mismatched, surplus = _interrupted(
        tmp_path, signal.SIGINT, 2, 8, 0.0, "--workers", "1", rate=1500
    )
    assert kills >= 2
    assert (twice, mismatched, surplus) == (0, 0, 0)


def test_retry_applies_the_failed_rows_increments_from_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's case: night 1 fails r1 (+5); night 2 overwrites data.csv (r1 +100 on the
    same line) and delivers it; ``retry night1``, from another directory, still applies r1's +5
    exactly once: an operation is named by the fingerprint its run recorded, not the file now."""
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")  # no key: fingerprint + line
    monkeypatch.chdir(tmp_path)  # sources named relatively, as from cron's working directory

    def night(lines: list[str], sandbox: Sandbox, label: str) -> Path:
        Path("data.csv").write_text("\n".join(["id,points,tag", *lines]) + "\n", "utf-8")
        config = ImportConfig(
            ("data.csv",),
            sandbox.url,
            KEY,
            mapping_path=Path("map.toml"),
            run_dir=Path(label),
            state_path=Path("ops.state"),
            **FAST,  # type: ignore[arg-type]
        )
        return run_import(config).run_dir

    blocked = SandboxSettings(blocked_external_ids=frozenset({"r1"}))
    with (
        sandbox_in_thread(blocked) as first,
        sandbox_in_thread(SandboxSettings(profiles=True)) as second,
    ):
        night1 = night(["r1,5,a", "r2,7,b"], first, "night1")
        night(["r1,100,c"], second, "night2")
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        retried = retry_import(tmp_path / night1, api_key=KEY, endpoint=second.url)
        again = retry_import(tmp_path / night1, api_key=KEY, endpoint=second.url)
        profile = second.profiles.get("external_id:r1")
    assert retried.stats.delivered == 1
    assert again.stats.delivered == 0  # the state remembers r1's +5 of night 1
    assert profile is not None and profile.attributes["points"] == 105


def test_operations_from_stdin_without_a_key_are_refused_with_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stdin has no fingerprint: its rows' increments could not be remembered, so a rerun or
    retry would apply them again. Refused before sending (exit 2)."""
    stdin = io.TextIOWrapper(io.BytesIO(b"id,points,tag\nu1,5,a\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    config = ImportConfig(
        ("-",),
        "http://127.0.0.1:9",
        KEY,
        mapping_path=tmp_path / "map.toml",
        run_dir=tmp_path / "run",
        state_path=tmp_path / "ops.state",
        read=ReadOptions(format="csv"),
    )
    with pytest.raises(ConfigError, match=r"\[operations\] key"):
        run_import(config)
    assert not (tmp_path / "run").exists()


def test_a_repeated_operations_key_fails_the_later_row_naming_the_first(tmp_path: Path) -> None:
    """Two rows of one transaction (k1 +5 and k1 +3, key T1): the second is a data error, not a
    delivery; it fails with its own code instead of being left out as if delivered."""
    (tmp_path / "map.toml").write_text(KEYED, encoding="utf-8")
    lines = ["id,txn,points,tag,pad", "k1,T1,5,a,", "k1,T1,3,b,"]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        summary = _run(tmp_path, sandbox, "run")
        profile = sandbox.profiles.get("external_id:k1")
    assert summary["delivered"] == 1 and summary["failed"] == 1 and summary["skipped"] == {}
    (failure,) = map(orjson.loads, (tmp_path / "run" / "failures.jsonl").read_bytes().splitlines())
    assert failure["line"] == 3 and failure["error"] == "duplicate_operation_key"
    assert "key 'T1' was already used by" in failure["message"]
    assert failure["message"].endswith(
        "data.csv line 2 of this run: this row is not sent; give each transaction its own key"
    )
    assert profile is not None and profile.attributes["points"] == 5


@pytest.mark.parametrize(
    ("source", "mapping"),
    [
        ('{"attributes": [{"external_id": "d1", "points": {"inc": 5}}]}', None),  # as it is
        (
            '{"id": "d1", "p": {"inc": 5}}',
            '[identity]\nexternal_id = "id"\n[attributes]\n'
            'points = { column = "p", type = "json" }\n',
        ),
    ],
    ids=["no mapping", "json column"],
)
def test_operations_that_come_with_the_data_are_remembered_too(
    tmp_path: Path, source: str, mapping: str | None
) -> None:
    """No ``op`` in the mapping, but the data holds ``{"inc": 5}``: Braze increments all the
    same, so the same file run again must not."""
    (tmp_path / "data.jsonl").write_text(source + "\n", encoding="utf-8")
    if mapping is not None:
        (tmp_path / "map.toml").write_text(mapping, encoding="utf-8")
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        summaries = []
        for label in ("run1", "run2"):
            config = ImportConfig(
                (str(tmp_path / "data.jsonl"),),
                sandbox.url,
                KEY,
                mapping_path=None if mapping is None else tmp_path / "map.toml",
                run_dir=tmp_path / label,
                state_path=tmp_path / "ops.state",
                **FAST,  # type: ignore[arg-type]
            )
            summaries.append(
                orjson.loads((run_import(config).run_dir / "summary.json").read_bytes())
            )
        profile = sandbox.profiles.get("external_id:d1")
    assert summaries[0]["delivered"] == 1
    assert summaries[1]["delivered"] == 0
    assert summaries[1]["skipped"] == {"operation_delivered": 1}
    assert profile is not None and profile.attributes["points"] == 5


def test_an_empty_operations_key_fails_a_row_with_operations(tmp_path: Path) -> None:
    """The mapping names operations by TxnId: a row with an increment and no TxnId cannot be
    named as promised (from stdin not at all), so it fails; a row without one goes."""
    (tmp_path / "map.toml").write_text(KEYED, encoding="utf-8")
    lines = ["id,txn,points,tag,pad", "e1,T1,5,,", "e2,,7,,", "e3,,0,,x"]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        summary = _run(tmp_path, sandbox, "run")
        held = {user: sandbox.profiles.get(f"external_id:{user}") for user in ("e1", "e2")}
    failures = [
        orjson.loads(line)
        for line in (tmp_path / "run" / "failures.jsonl").read_bytes().splitlines()
    ]
    assert [(f["line"], f["error"]) for f in failures] == [(3, "missing_operations_key")]
    assert "the column 'txn' is empty on a row with operations" in failures[0]["message"]
    assert summary["delivered"] == 1 and summary["skipped"] == {"no_data": 1}
    assert held["e1"] is not None and held["e1"].attributes["points"] == 5
    assert held["e2"] is None
