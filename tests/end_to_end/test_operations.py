"""Consent and operations from columns, imported into the sandbox over a socket: the profiles
it builds hold exactly what the rows say — groups per row, increments summed, tags united,
objects merged, epoch times — and bad consent cells fail their own line."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from importer import ImportConfig, RetryPolicy, run_import
from importer.sandbox import Sandbox, SandboxSettings, sandbox_in_thread
from tests.convert.test_operations import COLUMNS, MAPPING, NEWS, SMS

KEY = "sandbox-key"
# Retries without waiting; no rate limit: the sandbox's faults decide what is retried.
FAST = {"rate_per_minute": 0, "concurrency": 4, "retry": RetryPolicy(6, 0.001, 0.01)}


def _import(tmp_path: Path, sandbox: Sandbox, lines: list[str], **config: Any) -> Path:
    """Import ``lines`` (cells in COLUMNS order) with the converter tests' MAPPING."""
    source = tmp_path / "data.csv"
    source.write_text("\n".join([",".join(COLUMNS), *lines]) + "\n", encoding="utf-8")
    (tmp_path / "map.toml").write_text(MAPPING, encoding="utf-8")
    paths = {"mapping_path": tmp_path / "map.toml", "run_dir": tmp_path / "run"}
    run = ImportConfig((str(source),), sandbox.url, KEY, **paths, **FAST, **config)
    return run_import(run).run_dir


def _failures(run_dir: Path) -> dict[int, dict[str, Any]]:
    lines = (run_dir / "failures.jsonl").read_bytes().splitlines()
    return {failure["line"]: failure for failure in map(orjson.loads, lines)}


def test_one_users_rows_in_one_request_keep_every_groups_change(tmp_path: Path) -> None:
    """Three rows of one user, combined into one object in one request: each group named keeps
    its change, the later state of a group wins (the unsubscribe is not lost)."""
    lines = ["u9,Y,,,,,,,,,", f"u9,,{SMS},Y,,,,,,,", "u9,N,,,,,,,,,"]
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        _import(tmp_path, sandbox, lines)
        profile = sandbox.profiles.get("external_id:u9")
        assert sandbox.stats.requests == 1
    assert profile is not None
    assert profile.attributes["subscription_groups"] == [
        {"subscription_group_id": NEWS, "subscription_state": "unsubscribed"},
        {"subscription_group_id": SMS, "subscription_state": "subscribed"},
    ]


def test_consent_operations_and_epochs_land_in_the_profiles(tmp_path: Path) -> None:
    lines = [
        f'u1,Y,{SMS},Y,5,vip|beta,,"{{""mail"":{{""weekly"":true}}}}",1714564800,1714564800123,',
        'u1,,,,-2,gold,beta,"{""mail"":{""daily"":true}}",,,',  # add and remove in one row
        "u1,,,,0,,,,,,",  # an increment of 0 sends nothing: the row has no data
        f"u2,N,{SMS},N,,,,,1714564800.5,,",
        "u3,maybe,,,7,,,,,,",  # an unknown state: the whole row fails, nothing of it is sent
        f"u4,Y,{SMS},sometimes,,,,,,,",
        "u5,,,,,,,,yesterday,,",
    ]
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        run_dir = _import(tmp_path, sandbox, lines)
        u1 = sandbox.profiles.get("external_id:u1")
        u2 = sandbox.profiles.get("external_id:u2")
        assert sandbox.profiles.get("external_id:u3") is None
    assert u1 is not None and u2 is not None
    assert u1.attributes == {
        "subscription_groups": [
            {"subscription_group_id": NEWS, "subscription_state": "subscribed"},
            {"subscription_group_id": SMS, "subscription_state": "subscribed"},
        ],
        "points": 3,
        "tags": ["vip", "gold"],
        "prefs": {"mail": {"weekly": True, "daily": True}},
        "last_login": "2024-05-01T12:00:00+00:00",
        "last_order": "2024-05-01T12:00:00.123000+00:00",
    }
    assert u2.attributes == {
        "subscription_groups": [
            {"subscription_group_id": NEWS, "subscription_state": "unsubscribed"},
            {"subscription_group_id": SMS, "subscription_state": "unsubscribed"},
        ],
        "last_login": "2024-05-01T12:00:00.500000+00:00",
    }
    failures = _failures(run_dir)
    assert sorted(failures) == [6, 7, 8]  # file lines: the header is line 1
    assert failures[6]["error"] == "invalid_subscription_state"
    assert f"subscription_groups[0] (group '{NEWS}'): 'maybe'" in failures[6]["message"]
    assert f"subscription_groups[1] (group '{SMS}'): 'sometimes'" in failures[7]["message"]
    assert failures[8]["error"] == "invalid_time"
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert summary["rows_read"] == 7


def test_one_users_increments_and_tags_spread_through_the_file_add_up(tmp_path: Path) -> None:
    """Rows of a few users, interleaved with others', under 5xx (answered without applying):
    each profile holds the sum of its increments and the union of its tags, computed here.
    The packer sums a user's increments within a request and sends adds apart."""
    rng = random.Random(12)
    points: dict[str, int] = {}
    tags: dict[str, set[str]] = {}
    lines = []
    for n in range(600):
        user = f"u{rng.randrange(8)}" if n % 3 else f"other{n}"
        earned = rng.randint(-20, 50)
        added = rng.sample(["a", "b", "c", "d", "e", "f"], rng.randint(0, 2))
        lines.append(f"{user},,,,{earned},{'|'.join(added)},,,,,")
        if earned or added:
            points[user] = points.get(user, 0) + earned
            tags.setdefault(user, set()).update(added)
    settings = SandboxSettings(profiles=True, p_500=0.05, p_503=0.05, seed=4)
    with sandbox_in_thread(settings) as sandbox:
        run_dir = _import(tmp_path, sandbox, lines)
        held = {user: sandbox.profiles.get(f"external_id:{user}") for user in points}
        faults = sandbox.stats.faults
    summary = orjson.loads((run_dir / "summary.json").read_bytes())
    assert summary["delivered"] + summary["skipped"].get("no_data", 0) == 600
    assert faults.get("500", 0) + faults.get("503", 0) > 0
    for user, profile in held.items():
        assert profile is not None, user
        assert profile.attributes.get("points", 0) == points[user], user
        assert set(profile.attributes.get("tags", ())) == tags[user], user
        assert len(profile.attributes.get("tags", ())) == len(tags[user])


def test_a_fragments_several_objects_keep_their_place_among_the_users_rows(
    tmp_path: Path,
) -> None:
    """JSONL taken as it is: a row, then a fragment with two objects of the same user, then a
    row. Nothing folds into the fragment's first object (it would jump the second), and the
    fragment shares no request with the user's other rows; the profile ends as written."""
    rows = [
        {"external_id": "a", "x": 0},
        {"attributes": [{"external_id": "a", "x": 1}, {"external_id": "a", "y": 1}]},
        {"external_id": "a", "x": 2},
        {"attributes": [{"external_id": "b", "_update_existing_only": False, "z": 1}]},
        {"attributes": [{"external_id": "b", "_update_existing_only": True, "w": 2}]},
    ]
    source = tmp_path / "data.jsonl"
    source.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    with sandbox_in_thread(SandboxSettings(profiles=True)) as sandbox:
        run = ImportConfig((str(source),), sandbox.url, KEY, run_dir=tmp_path / "run", **FAST)
        run_import(run)
        a, b = (sandbox.profiles.get(f"external_id:{user}") for user in "ab")
        requests = sandbox.stats.requests
    assert a is not None and a.attributes == {"x": 2, "y": 1}
    assert b is not None and b.attributes == {"z": 1, "w": 2}  # created by the first row
    assert requests == 4  # [x=0], the fragment, [x=2 with b's z], [b's w]
