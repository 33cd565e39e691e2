"""The type ``init-mapping`` settles for one column, and what its comment says about the sample."""

from __future__ import annotations

import pytest

from importer.mapping.column_types import guess_type
from importer.mapping.naming import gender_map, snake_case


def _days(count: int, fmt: str = "{d:02d}.{m:02d}.19{y:02d}") -> list[str]:
    return [fmt.format(d=1 + i % 28, m=1 + i % 12, y=40 + i % 50) for i in range(count)]


@pytest.mark.parametrize(
    ("values", "fmt"),
    [
        (["25.04.1946", "01.12.1950"], "%d.%m.%Y"),
        (["4/25/1946", "12/1/1950"], "%m/%d/%Y"),
        (["25/04/1946", "1/12/1950"], "%d/%m/%Y"),
        (["1946/04/25", "1950/12/01"], "%Y/%m/%d"),
        (["25-04-1946"], "%d-%m-%Y"),
        (["25.04.1946 06:10", "01.12.1950 23:59"], "%d.%m.%Y %H:%M"),
        (["4/25/2019 6:10:55 AM", "12/1/2019 11:00:00 PM"], "%m/%d/%Y %I:%M:%S %p"),
        (["2019/04/25T06:10:55"], "%Y/%m/%dT%H:%M:%S"),
    ],
)
def test_local_dates_and_times_get_their_format(values: list[str], fmt: str) -> None:
    guess = guess_type(values)
    assert guess.format == fmt
    assert guess.type == ("time" if ":" in fmt else "date")
    assert not guess.ambiguous


def test_a_value_with_a_day_above_12_settles_the_order_and_is_named() -> None:
    guess = guess_type(["04/05/1990", "03/02/1980", "04/25/1946"])
    assert guess.format == "%m/%d/%Y" and not guess.ambiguous
    assert "month-first, as '04/25/1946' shows" in guess.note


def test_a_sample_that_reads_both_ways_says_so_and_takes_the_preferred_order() -> None:
    values = ["04/05/1990", "03/02/1980"]
    assert guess_type(values).format == "%m/%d/%Y"  # "/" alone: month-first
    guess = guess_type(values, day_first=True)
    assert guess.format == "%d/%m/%Y" and guess.ambiguous
    assert "cannot tell day from month" in guess.note
    assert guess_type(["04.05.1990"]).format == "%d.%m.%Y"  # nobody writes 05.04 month-first


def test_a_few_broken_cells_do_not_make_a_column_text() -> None:
    values = [str(n * 7) for n in range(38)] + ["zwölf", "n.a."]
    guess = guess_type(values)
    assert guess.type == "integer" and guess.bad == 2
    assert "2 of 40 cells are not ('zwölf'): those rows would fail" in guess.note
    assert guess_type([*values, "x"]).type == "string"  # 3 of 41: below 95%
    assert guess_type(["1", "2", "x"]).type == "string"  # a small sample must all fit


def test_a_broken_date_among_many_keeps_the_date_type() -> None:
    guess = guess_type([*_days(30), "31.02.1990"])
    assert (guess.type, guess.format, guess.bad) == ("date", "%d.%m.%Y", 1)


@pytest.mark.parametrize(
    ("values", "note"),
    [
        (["2019-04-25T06:10:55Z", "2019-04-25T08:10:55+02:00"], "every value carries its UTC"),
        (["2019-04-25T06:10:55", "2019-04-25T06:10"], "no value carries a UTC offset"),
        (["2019-04-25T06:10:55Z", "2019-04-25"], "mixed: 1 of 2 carry a UTC offset"),
    ],
)
def test_the_time_comment_says_what_the_offsets_are(values: list[str], note: str) -> None:
    guess = guess_type(values)
    assert guess.type == "time" and note in guess.note


@pytest.mark.parametrize(
    ("values", "options"),
    [
        (["Y", "N", "yes", "No", "true", "false", "1", "0"], {}),
        (["ja", "nein", "Ja"], {"true": ["ja"], "false": ["nein"]}),
        (["oui", "Non", "OUI"], {"true": ["oui"], "false": ["non"]}),
        (["J", "N", "ja"], {"true": ["j", "ja"], "false": ["n"]}),
    ],
)
def test_flags_become_booleans_with_their_words(
    values: list[str], options: dict[str, list[str]]
) -> None:
    guess = guess_type(values)
    assert guess.type == "boolean"
    assert guess.options == options


def test_zeros_and_ones_of_a_count_stay_integers() -> None:
    assert guess_type(["0", "1", "1"], name="orders_count").type == "integer"
    assert guess_type(["0", "1", "1"], name="is_vip").type == "boolean"


@pytest.mark.parametrize(
    ("values", "delimiter", "separator"),
    [
        (["golf|wine", "wine", "golf|tennis|wine"], ",", "|"),
        (["golf;wine", "wine", "golf;tennis"], ",", ";"),
        (["golf, wine", "wine", "golf,tennis"], ";", ","),
        (["golf;wine", "wine", "golf;tennis"], ";", None),  # ; cannot be inside a ; file
    ],
)
def test_lists_in_a_cell_become_arrays(
    values: list[str], delimiter: str, separator: str | None
) -> None:
    guess = guess_type(values, delimiter=delimiter)
    if separator is None:
        assert guess.type == "string"
    else:
        assert (guess.type, guess.options) == ("array", {"separator": separator})


def test_free_text_with_punctuation_is_not_a_list() -> None:
    notes = [f"Called on day {n}, left a message; will call {n} again" for n in range(20)]
    assert guess_type(notes, delimiter=",").type == "string"
    amounts = ["12,50", "3", "7,99", "0,5"]
    guess = guess_type(amounts, delimiter=";")
    assert guess.type == "string" and "decimal commas" in guess.note


def test_a_state_column_gets_a_map_suggestion_and_other_few_valued_ones_do_not() -> None:
    states = ["aktiv", "aktiv", "inaktiv", "gesperrt", "aktiv", "inaktiv"]
    guess = guess_type(states)
    assert guess.type == "string"
    assert guess.suggest == {"aktiv": "active", "gesperrt": "blocked", "inaktiv": "inactive"}
    assert guess_type(["free", "pro", "free", "team", "pro", "free"]).suggest is None
    assert guess_type(["DE", "AT", "DE", "CH", "AT", "DE"]).suggest is None


def test_epoch_looking_integers_are_read_as_epoch_times() -> None:
    seconds = [1_556_172_655 + n * 86_400 for n in range(5)]
    guess = guess_type([str(n) for n in seconds], name="created_at")
    assert (guess.type, guess.format) == ("time", "epoch")
    assert "Unix epoch seconds (2019-04-25 … 2019-04-29): read as times" in guess.note
    assert guess.field_options() == {"type": "time", "format": "epoch"}
    jsonl = guess_type(seconds, name="created_at")
    assert (jsonl.type, jsonl.format) == ("time", "epoch")
    millis = guess_type([n * 1000 for n in seconds], name="login_ts")
    assert (millis.type, millis.format) == ("time", "epoch_ms") and "milliseconds" in millis.note
    assert guess_type([n * 1000 for n in seconds], name="login_ts").format == "epoch_ms"
    plain = guess_type([str(n) for n in seconds], name="customer")
    assert plain.type == "integer" and "epoch" not in plain.note


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Loyalty Points", "loyalty_points"),
        ("LoyaltyPoints", "loyalty_points"),
        ("VIPLevel", "vip_level"),
        ("E-Mail", "e_mail"),
        ("Straße", "strasse"),
        ("Größe", "groesse"),
        ("Prénom", "prenom"),
        ("  __Odd  Name__ ", "odd_name"),
    ],
)
def test_snake_case(name: str, key: str) -> None:
    assert snake_case(name) == key


def test_gender_words_map_to_braze_codes_and_unknown_to_nothing() -> None:
    assert gender_map(("F", "M")) == {}
    assert gender_map(("M", "F", "U")) == {"M": "M", "F": "F", "U": ""}
    assert gender_map(("Frau", "Mann", "unbekannt")) == {"Frau": "F", "Mann": "M", "unbekannt": ""}
    assert gender_map(("F", "M", "Q")) is None
