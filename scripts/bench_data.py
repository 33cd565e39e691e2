"""Benchmark data: deterministic, seeded CSV files for the mappings in scripts/bench-mappings/.

.venv/bin/python scripts/bench_data.py --mapping crm --rows 1000000

prints the path of the CSV (bench-data/, git-ignored), generating it first if it is missing.
The same (mapping, rows) always gives the same bytes: every file has its own seeded
``random.Random``; a generator change bumps ``VERSION``, which is part of the file name.

- ``benchmark``: the project's original 12-column file (scripts/bench-mappings/benchmark.toml):
  every row an attributes object and an event, every third row a purchase.
- ``crm``: a legacy CRM export, 28 columns, for scripts/bench-mappings/crm.toml, which uses every
  field type and option of the mapping language. Like a real export: a few % empty cells, null
  markers (NULL, \\N, n/a), mixed-case booleans, repeated values (names, cities, plans, SKUs,
  minute-resolution timestamps), a purchase on 40% of rows. ≈2.4 objects per row.
- ``wide``: a 40-column marketing/CRM export for scripts/bench-mappings/wide.toml: 33 attributes,
  three events (every row, ~85% and ~45% of rows), a purchase on ~30% of rows.

Every row of every file converts without failure with its mapping (`bench.py` aborts on any).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data"
MAPPINGS = ROOT / "scripts" / "bench-mappings"
VERSION = 1  # bump when a generator's output changes: old files are then not reused
NAMES = ("benchmark", "crm", "wide")

FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Meyer", "Schulz", "Novak", "Rossi", "Dubois", "Jensen", "García", "Kowalski"]
CITIES = ["Berlin", "Hamburg", "Wien", "Zürich", "Lyon", "Milano", "Praha", "Gdańsk"]
BENCHMARK_HEADER = (
    "external_id,first_name,last_name,email,city,points,vip,signup,plan,sku,amount,order_date\n"
)

# --- shared pools (real exports repeat values) -----------------------------------------------
_FIRST = [
    "Anna",
    "Lukas",
    "Sophie",
    "Maximilian",
    "Marie",
    "Paul",
    "Emma",
    "Leon",
    "Mia",
    "Felix",
    "Hannah",
    "Jonas",
    "Lea",
    "Elias",
    "Lena",
    "Noah",
    "Clara",
    "Finn",
    "Emilia",
    "Luis",
    "Sofia",
    "Ben",
    "Lina",
    "Henry",
    "Ella",
    "Theo",
    "Ida",
    "Jakob",
    "Frieda",
    "Anton",
    "Chloé",
    "Zoë",
    "Dmitri",
    "Farid",
    "Gülşen",
    "Åsa",
    "Renée",
    "José",
    "Łukasz",
    "Ines",
]
_LAST = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Dubois",
    "Rossi",
    "Novak",
    "Jensen",
    "García",
    "Kowalski",
    "O'Brien",
    "Van der Berg",
]
_CITIES = [
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Frankfurt",
    "Stuttgart",
    "Düsseldorf",
    "Leipzig",
    "Dortmund",
    "Essen",
    "Bremen",
    "Dresden",
    "Hannover",
    "Nürnberg",
    "Wien",
    "Graz",
    "Zürich",
    "Basel",
    "Genève",
    "Lyon",
    "Milano",
    "Praha",
    "Gdańsk",
]
_DOMAINS = ("example.com", "example.de", "mail.example.org", "example.at", "web.example.net")
_COUNTRIES = ("DE",) * 12 + ("AT",) * 3 + ("CH",) * 3 + ("FR", "IT", "PL", "CZ", "NL")
_INTERESTS = [
    "jazz",
    "pop",
    "rock",
    "hip-hop",
    "classical",
    "electronic",
    "folk",
    "metal",
    "soul",
    "indie",
    "reggae",
    "country",
    "audiobooks",
    "podcasts",
    "vinyl",
    "concerts",
]
_SKUS = [f"SKU-{n:05d}" for n in range(1, 801)] + [f"GIFTCARD-{v}" for v in (10, 25, 50, 100)]
_BERLIN = ZoneInfo("Europe/Berlin")


def _epoch(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


def _maybe(rng: random.Random, p_empty: float, value: str, markers: tuple[str, ...] = ()) -> str:
    """``value``, or with probability ``p_empty`` an empty cell (a quarter of those a marker)."""
    if rng.random() >= p_empty:
        return value
    if markers and rng.random() < 0.25:
        return rng.choice(markers)
    return ""


_NULLS = ("NULL", "\\N", "n/a")


# --- benchmark: the original file (kept byte for byte) ----------------------------------------


def generate_benchmark(path: Path, rows: int) -> None:
    """A 12-column legacy user file: every row an attributes object and an event, every
    third row a purchase."""
    rng = random.Random(42)
    start = datetime(2015, 1, 1, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as out:
        out.write(BENCHMARK_HEADER)
        for n in range(rows):
            signup = start + timedelta(seconds=rng.randrange(300_000_000))
            when = signup.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            purchase = n % 3 == 0
            sku = f"SKU-{rng.randrange(500)}" if purchase else ""
            amount = f"{rng.randrange(100, 99_999) / 100:.2f}" if purchase else ""
            out.write(
                f"U{n:08d},{rng.choice(FIRST)},{rng.choice(LAST)},user{n}@example.com,"
                f"{rng.choice(CITIES)},{rng.randrange(10_000)},{rng.choice(('yes', 'no'))},"
                f"{when},{rng.choice(('free', 'pro', 'team'))},{sku},{amount},"
                f"{when if purchase else ''}\n"
            )


# --- crm --------------------------------------------------------------------------------------

CRM_HEADER = [
    *("CustomerNo", "FirstName", "LastName", "Email", "Phone", "Birthday", "Sex", "Country"),
    *("City", "Language", "Points", "Balance", "VIP", "Newsletter", "Interests", "Prefs"),
    *("Tier", "Created", "LastLogin", "UpdatedAt", "Plan", "Channel", "SKU", "Amount"),
    *("Currency", "Qty", "OrderDate", "Gift"),
]
_VIP = ("yes", "no", "Yes", "No", "YES", "NO", "true", "false", "TRUE", "False", "y", "n", "1", "0")
_VIP = _VIP + ("no",) * 10  # most customers are not VIPs
_NEWSLETTER = ("opt-in", "Opt-In", "OPT-IN", "opt-out", "Opt-Out", "subscribed", "Unsubscribed")
_SEX = ("Male",) * 9 + ("Female",) * 9 + ("Diverse", "male", "female", "")
_LANGS = ("de",) * 6 + ("en", "en", "fr", "it", "pl", "cs")
_TIERS = ("Bronze",) * 8 + ("Silver",) * 4 + ("Gold",) * 2 + ("Platinum",)
_PLANS = ("basic",) * 5 + ("plus",) * 3 + ("premium", "student", "family")
_CHANNELS = ("web",) * 5 + ("app",) * 4 + ("pos", "phone", "")
_CURRENCIES = ("EUR",) * 6 + ("€",) * 3 + ("CHF", "CHF", "$", "USD", "GBP", "£", "PLN")
_PREFS = (
    '{"contact": "email", "frequency": "weekly"}',
    '{"contact": "sms", "frequency": "monthly", "quiet_hours": [22, 7]}',
    '{"contact": "none"}',
    '{"contact": "email", "frequency": "daily", "topics": ["deals", "news"]}',
    "{}",
)


def generate_crm(path: Path, rows: int) -> None:
    rng = random.Random(15_001)
    rand, choice, randrange = rng.random, rng.choice, rng.randrange
    signup_from, signup_span = _epoch(2008), _epoch(2024) - _epoch(2008)
    login_from, login_span = _epoch(2024), 300 * 86_400
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CRM_HEADER)
        for n in range(rows):
            first, last = choice(_FIRST), choice(_LAST)
            local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
            email = f"{local}{n}@{choice(_DOMAINS)}"
            phone = f"+49 {randrange(30, 999)} {randrange(100_000, 9_999_999)}"
            birthday = f"{randrange(1, 29):02}.{randrange(1, 13):02}.{randrange(1940, 2007)}"
            # Created: a German CRM's local wall time, minute resolution (always a real time).
            created = datetime.fromtimestamp(
                signup_from + randrange(signup_span) // 60 * 60, _BERLIN
            )
            # LastLogin: naive ISO, Berlin wall time; UpdatedAt: naive ISO, UTC (the system's).
            login = datetime.fromtimestamp(login_from + randrange(login_span), _BERLIN)
            updated = datetime.fromtimestamp(login_from + randrange(login_span), UTC)
            purchase = rand() < 0.4
            if purchase:
                order = datetime.fromtimestamp(login_from + randrange(login_span), UTC)
                cells = [
                    choice(_SKUS),
                    f"{randrange(199, 49_999) / 100:.2f}",
                    choice(_CURRENCIES),
                    _maybe(rng, 0.3, str(choice((1, 1, 1, 1, 2, 2, 3, 5)))),
                    order.strftime("%Y-%m-%d %H:%M:%S"),
                    _maybe(rng, 0.1, choice(("N", "N", "N", "nein", "J", "ja", "Nein"))),
                ]
            else:
                cells = ["", "", "", "", "", ""]
            interests = ";".join(rng.sample(_INTERESTS, randrange(0, 4)))
            if interests and rand() < 0.05:
                interests = f" {interests}; "  # sloppy separators, trimmed by the importer
            writer.writerow(
                [
                    f"C{100_000 + n}",
                    first,
                    _maybe(rng, 0.01, last),
                    _maybe(rng, 0.03, email, _NULLS),
                    _maybe(rng, 0.15, phone, _NULLS),
                    _maybe(rng, 0.05, birthday, _NULLS),
                    choice(_SEX),
                    _maybe(rng, 0.02, choice(_COUNTRIES)),
                    _maybe(rng, 0.04, choice(_CITIES), _NULLS),
                    choice(_LANGS),
                    _maybe(rng, 0.04, str(randrange(0, 20_000)), _NULLS),
                    _maybe(rng, 0.1, f"{randrange(-5_000, 100_000) / 100:.2f}"),
                    _maybe(rng, 0.02, choice(_VIP)),
                    _maybe(rng, 0.05, choice(_NEWSLETTER)),
                    interests,
                    _maybe(rng, 0.2, choice(_PREFS), _NULLS),
                    choice(_TIERS),
                    created.strftime("%d.%m.%Y %H:%M"),
                    _maybe(rng, 0.03, login.strftime("%Y-%m-%dT%H:%M:%S")),
                    updated.strftime("%Y-%m-%dT%H:%M:%S"),
                    _maybe(rng, 0.06, choice(_PLANS)),
                    choice(_CHANNELS),
                    *cells,
                ]
            )


# --- wide -------------------------------------------------------------------------------------

WIDE_HEADER = [
    *("customer_id", "email", "first_name", "last_name", "phone", "dob", "gender", "country"),
    *("city", "zip", "street", "language", "time_zone", "company", "job_title", "department"),
    *("industry", "employees", "annual_revenue", "lead_score", "lifecycle_stage", "owner"),
    *("source", "campaign", "utm_medium", "utm_source", "consent_email", "consent_sms"),
    *("created_at", "last_activity_at", "app_version", "device", "os", "sessions"),
    *("avg_session_s", "nps", "tags", "sku", "price", "ordered_at"),
]
_GENDERS = ("M", "F", "M", "F", "O", "N", "P", "")
_ZONES = ("Europe/Berlin", "Europe/Vienna", "Europe/Zurich", "Europe/Paris", "Europe/Warsaw")
_COMPANIES = [f"{name} {kind}" for name in _LAST for kind in ("GmbH", "AG", "SE", "& Co. KG")]
_JOBS = ("Engineer", "Manager", "Analyst", "Director", "Consultant", "Designer", "Sales Rep")
_DEPTS = ("IT", "Sales", "Marketing", "Finance", "HR", "Operations", "Support")
_INDUSTRIES = ("Retail", "Software", "Manufacturing", "Media", "Logistics", "Health", "Energy")
_STAGES = ("lead", "lead", "mql", "sql", "opportunity", "customer", "customer", "churned")
_OWNERS = [f"owner{n:02}@example.com" for n in range(40)]
_SOURCES = ("organic", "paid_search", "social", "referral", "email", "direct")
_CAMPAIGNS = [f"cmp-2024-{n:03}" for n in range(1, 61)]
_MEDIUMS = ("cpc", "email", "social", "display", "affiliate")
_UTM_SOURCES = ("google", "bing", "newsletter", "facebook", "linkedin", "instagram")
_DEVICES = ("iPhone15,2", "iPhone14,5", "Pixel 8", "SM-S911B", "iPad13,1", "desktop")
_OSES = ("iOS 17.4", "iOS 17.5", "Android 14", "Android 13", "iPadOS 17.4", "macOS 14")
_VERSIONS = ("5.12.0", "5.12.1", "5.13.0", "5.13.2", "5.14.0")
_TAGS = ["beta", "vip", "b2b", "newsletter", "churn-risk", "trial", "partner", "early-adopter"]
_BOOLS = ("true", "false", "TRUE", "False", "yes", "no")


def generate_wide(path: Path, rows: int) -> None:
    rng = random.Random(15_040)
    rand, choice, randrange = rng.random, rng.choice, rng.randrange
    created_from, created_span = _epoch(2015), _epoch(2024) - _epoch(2015)
    recent_from, recent_span = _epoch(2024), 300 * 86_400
    iso = "%Y-%m-%dT%H:%M:%S+00:00"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(WIDE_HEADER)
        for n in range(rows):
            first, last = choice(_FIRST), choice(_LAST)
            created = datetime.fromtimestamp(created_from + randrange(created_span), UTC)
            active = rand() < 0.85
            touched = rand() < 0.45
            bought = rand() < 0.3
            activity = datetime.fromtimestamp(recent_from + randrange(recent_span), UTC)
            order = datetime.fromtimestamp(recent_from + randrange(recent_span), UTC)
            writer.writerow(
                [
                    f"W{n:09d}",
                    f"{first}.{last}{n}@{choice(_DOMAINS)}".lower().replace(" ", ""),
                    first,
                    last,
                    _maybe(rng, 0.2, f"+49{randrange(1_500_000_000, 1_799_999_999)}"),
                    _maybe(
                        rng,
                        0.1,
                        f"{randrange(1945, 2006)}-{randrange(1, 13):02}-{randrange(1, 29):02}",
                    ),
                    choice(_GENDERS),
                    choice(_COUNTRIES),
                    choice(_CITIES),
                    f"{randrange(1_000, 99_999):05}",
                    _maybe(rng, 0.1, f"{choice(_LAST)}straße {randrange(1, 200)}"),
                    choice(_LANGS),
                    choice(_ZONES),
                    _maybe(rng, 0.3, choice(_COMPANIES)),
                    _maybe(rng, 0.3, choice(_JOBS)),
                    _maybe(rng, 0.3, choice(_DEPTS)),
                    _maybe(rng, 0.3, choice(_INDUSTRIES)),
                    _maybe(rng, 0.3, str(choice((5, 12, 50, 120, 500, 2_000, 10_000)))),
                    _maybe(rng, 0.4, f"{randrange(10_000, 500_000_000) / 100:.2f}"),
                    str(randrange(0, 101)),
                    choice(_STAGES),
                    choice(_OWNERS),
                    choice(_SOURCES),
                    choice(_CAMPAIGNS) if touched else "",
                    choice(_MEDIUMS) if touched else "",
                    choice(_UTM_SOURCES) if touched else "",
                    choice(_BOOLS),
                    choice(_BOOLS),
                    created.strftime(iso),
                    activity.strftime(iso) if active else "",
                    choice(_VERSIONS) if active else "",
                    choice(_DEVICES) if active else "",
                    choice(_OSES) if active else "",
                    str(randrange(1, 500)) if active else "",
                    f"{randrange(5, 3_600) / 10:.1f}" if active else "",
                    _maybe(rng, 0.7, str(randrange(0, 11))),
                    "|".join(rng.sample(_TAGS, randrange(0, 3))),
                    choice(_SKUS) if bought else "",
                    f"{randrange(199, 49_999) / 100:.2f}" if bought else "",
                    order.strftime(iso) if bought else "",
                ]
            )


GENERATORS: dict[str, Callable[[Path, int], None]] = {
    "benchmark": generate_benchmark,
    "crm": generate_crm,
    "wide": generate_wide,
}


def mapping_path(name: str) -> Path:
    return MAPPINGS / f"{name}.toml"


def data_path(name: str, rows: int) -> Path:
    # The benchmark file keeps its old name, so a file generated before this module is reused.
    if name == "benchmark":
        return DATA / f"users-{rows}.csv"
    return DATA / f"{name}-v{VERSION}-{rows}.csv"


def ensure(name: str, rows: int, *, quiet: bool = False) -> Path:
    """The path of the (name, rows) CSV, generated first if missing."""
    path = data_path(name, rows)
    if not path.exists():
        if not quiet:
            print(f"generating {path.relative_to(ROOT)} ...", file=sys.stderr, flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        GENERATORS[name](partial, rows)
        partial.rename(path)  # an interrupted generation is never mistaken for a full file
    return path


def ensure_part(name: str, rows: int, part: int) -> Path:
    """Part 0 is ``ensure(name, rows)``; part k the same rows with ``pk-`` before every
    identifier (the first column of every file): other users, so a long run over several parts
    never sends a user twice (the ceiling with a fresh ``--state``)."""
    base = ensure(name, rows)
    if part == 0:
        return base
    path = base.with_name(f"{base.stem}-p{part}.csv")
    if not path.exists():
        prefix = f"p{part}-".encode()
        partial = path.with_suffix(".partial")
        with base.open("rb") as source, partial.open("wb") as out:
            out.write(source.readline())
            out.writelines(prefix + line for line in source)
        partial.rename(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mapping", choices=NAMES, default="crm")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    print(ensure(args.mapping, args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
