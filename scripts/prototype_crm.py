"""A throw-away, hard-coded pipeline for scripts/bench-mappings/crm.toml: the yardstick.

.venv/bin/python scripts/prototype_crm.py FILE.csv --endpoint URL [--concurrency 32] [--json]
(`scripts/bench.py --scenario prototype` runs it beside the importer, both pinned to one core.)

The best single-process design I could write for exactly that mapping: ``csv.reader`` over the
file; each row converted by straight-line code written for these 28 columns (no per-field
dispatch, no per-row dict of the record; dates and zone offsets looked up per calendar day);
the checks Braze's rules need for what this mapping can produce (identifier length, email,
phone, gender, country, 255-character strings, currencies, quantities 1–100, finite numbers,
JSON depth and 64-bit integers, property names); each object serialised once with ``orjson``;
legacy packing (75 per array, 225 objects, < 4 MB per request; 75 rows and ~180 objects here);
POSTed with ``aiohttp`` (uvloop when installed, as the importer) by ``--concurrency`` workers
from a 4-request queue, in one process on one core. It sends the same objects, byte for byte,
as ``braze-import run FILE --mapping scripts/bench-mappings/crm.toml --batch-mode legacy``.

What it skips, which the importer does (so the importer may cost more per row, by the issue
at most 1.25×):
- no run directory: no ``run.json``, no ``results.jsonl`` line per request, no
  ``failures.jsonl`` (a failed row is counted, its reason dropped), no ``summary.json``, no lock;
- no resume journal: an interrupted run cannot be resumed, and signals are not handled (no
  draining on Ctrl-C);
- no per-user ordering (a user's rows in two requests in flight at once are not held back) and
  no merging of one user's attributes inside a request: the file has one row per user;
- no accounting per row (``rows_read = delivered + failed + skipped``), no line numbers, no row
  references kept per request, so ``errors[]`` in an answer are counted, not mapped to rows;
- no pacing or rate limiting, no adaptive workers (a fixed ``--concurrency``), no retries beyond
  three tries on a 429/5xx, no splitting of refused requests, no ``--state``;
- no general reader: no encodings other than UTF-8, no BOM, gzip, delimiter sniffing, cell size
  limits, ragged-row or broken-quote handling; the columns must be the CRM file's;
- no progress output, metrics file or summary text.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import math
import operator
import os
import re
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson

# --- the mapping, hard-coded ---------------------------------------------------------------------

COLUMNS = (
    *("CustomerNo", "FirstName", "LastName", "Email", "Phone", "Birthday", "Sex", "Country"),
    *("City", "Language", "Points", "Balance", "VIP", "Newsletter", "Interests", "Prefs"),
    *("Tier", "Created", "LastLogin", "UpdatedAt", "Plan", "Channel", "SKU", "Amount"),
    *("Currency", "Qty", "OrderDate", "Gift"),
)
NULLS = frozenset(("", "NULL", "\\N", "n/a"))
GENDER = {"Male": "M", "male": "M", "Female": "F", "female": "F", "Diverse": "O"}
GENDERS = frozenset("MFONP")
TIER = {"Bronze": 1, "Silver": 2, "Gold": 3, "Platinum": 4}
CHANNEL = {"web": "Web", "app": "App", "pos": "Store", "phone": "Phone"}
CURRENCY_MAP = {"€": "EUR", "$": "USD", "£": "GBP"}
_CODES = """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
    XAG XAU XBA XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG
    ZWL"""
CURRENCIES = frozenset(_CODES.split())


def _words(true: tuple[str, ...], false: tuple[str, ...]) -> dict[str, bool]:
    table = {}
    for words, value in ((true, True), (false, False)):
        for word in words:
            for spelling in (word, word.lower(), word.upper(), word.capitalize()):
                table[spelling] = value
    return table


VIP = _words(("true", "yes", "y", "t", "1"), ("false", "no", "n", "f", "0"))
NEWSLETTER = _words(("opt-in", "subscribed"), ("opt-out", "unsubscribed"))
GIFT = _words(("J", "ja"), ("N", "nein"))
VIP_FOLDED = {key.casefold(): value for key, value in VIP.items()}
NEWSLETTER_FOLDED = {key.casefold(): value for key, value in NEWSLETTER.items()}
GIFT_FOLDED = {key.casefold(): value for key, value in GIFT.items()}
CRM_IMPORT = {"system": "legacy_crm", "exported": "2024-11-30"}
EMAIL = re.compile(r"[^@\s]+@(?:[^@\s.]+\.)+[^@\s.]{2,}")
# Braze's loose phone rule and "at least 3 digits" in one match.
PHONE = re.compile(r"(?=(?:[^0-9]*[0-9]){3})\+?[0-9(][0-9 ()./-]*")
LONG_DIGITS = re.compile(r"\d{19}")
BERLIN = ZoneInfo("Europe/Berlin")
LIMIT_PER_ARRAY, LIMIT_TOTAL, LIMIT_BYTES = 75, 225, 4_000_000


class Fail(Exception):
    """The row cannot be sent (counted, not logged)."""


def _format_offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"


_DAYS: dict[str, list[str | None]] = {}


def berlin_hours(day: str) -> list[str | None]:
    """The Europe/Berlin offset of each hour of ``day`` (YYYY-MM-DD); None for an hour that a
    DST change skipped. Berlin's changes fall on whole hours; in an overlap the first wins."""
    hours = _DAYS.get(day)
    if hours is None:
        year, month, dom = int(day[:4]), int(day[5:7]), int(day[8:10])
        hours = []
        for hour in range(24):
            naive = datetime(year, month, dom, hour, 30)
            before = BERLIN.utcoffset(naive)
            after = BERLIN.utcoffset(naive.replace(fold=1))
            assert before is not None and after is not None
            hours.append(None if before < after else _format_offset(before))
        _DAYS[day] = hours
    return hours


_VALID_DATES: set[str] = set()


def valid_date(iso: str) -> bool:
    if iso in _VALID_DATES:
        return True
    try:
        date.fromisoformat(iso)
    except ValueError:
        return False
    if len(_VALID_DATES) < 100_000:
        _VALID_DATES.add(iso)
    return True


def berlin_wall(day: str, hms: str) -> str:
    """``day``T``hms`` (validated) as ISO with Berlin's offset."""
    hour, minute, second = hms[:2], hms[3:5], hms[6:]
    if not (
        hour.isdigit()
        and minute.isdigit()
        and second.isdigit()
        and hour < "24"
        and minute < "60"
        and second < "60"
        and hms[2] == hms[5] == ":"
        and valid_date(day)
    ):
        raise Fail("invalid_time")
    offset = berlin_hours(day)[int(hour)]
    if offset is None:
        raise Fail("invalid or nonexistent time")
    return f"{day}T{hms}{offset}"


def general_time(text: str, fmt: str | None, zone: Any) -> str:
    """Anything off the fast paths: strptime / fromisoformat, then the zone."""
    try:
        moment = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        raise Fail("invalid_time") from None
    if moment.tzinfo is not None:
        return moment.isoformat()
    if zone is UTC:
        return moment.isoformat() + "+00:00"
    naive = moment.replace(tzinfo=None)
    hours = berlin_hours(naive.date().isoformat())
    offset = hours[naive.hour]
    if offset is None:
        raise Fail("nonexistent_time")
    return naive.isoformat() + offset


def to_int(text: str) -> int:
    if len(text) < 19 and text.isdigit() and text.isascii():
        return int(text)
    if text.isascii() and "_" not in text:
        try:
            number = int(text)
        except ValueError:
            raise Fail("invalid_integer") from None
        if -(2**63) <= number < 2**63:
            return number
    raise Fail("invalid_integer")


def to_float(text: str) -> float:
    if text.isascii() and "_" not in text:
        try:
            number = float(text)
        except ValueError:
            raise Fail("invalid_float") from None
        if math.isfinite(number):
            return number
    raise Fail("invalid_float")


def json_cell(text: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Fail("invalid_json") from None
    if text.count("[") + text.count("{") > 254 or LONG_DIGITS.search(text):
        raise Fail("json too deep or integer out of range (not handled here)")
    if type(value) is dict and "inc" in value and len(value) == 1 and type(value["inc"]) is not int:
        raise Fail("invalid_increment")
    if type(value) is list and any(type(item) is str and len(item) > 255 for item in value):
        raise Fail("string_too_long")
    if type(value) is str and len(value) > 255:
        raise Fail("string_too_long")
    return value


_pick = operator.itemgetter  # replaced by the header's positions in main()


def convert(row: list[str]) -> tuple[bytes, bytes | None, bytes | None]:
    """One row -> its serialised attributes object, event (or None), purchase (or None)."""
    (
        cid, first, last, email, phone, birthday, sex, country, city, language, points,
        balance, vip, newsletter, interests, prefs, tier, created, login, updated, plan,
        channel, sku, amount, currency, qty, order_date, gift,
    ) = _pick(row)  # fmt: skip
    cid = cid.strip()
    if cid in NULLS:
        raise Fail("no identifier")
    if len(cid) * 4 > 987 and len(cid.encode("utf-8", "surrogatepass")) > 987:
        raise Fail("external_id_too_long")
    a: dict[str, Any] = {"external_id": cid, "_update_existing_only": False}
    v = first.strip()
    if v not in NULLS:
        a["first_name"] = v
    v = last.strip()
    if v not in NULLS:
        a["last_name"] = v
    v = email.strip()
    if v in NULLS:
        a["email"] = None
    elif EMAIL.fullmatch(v):
        a["email"] = v
    else:
        raise Fail("invalid_email")
    v = phone.strip()
    if v not in NULLS:
        if len(v) > 40 or PHONE.fullmatch(v) is None:
            raise Fail("invalid_phone")
        a["phone"] = v
    v = birthday.strip()
    if v not in NULLS:
        if len(v) == 10 and v[2] == "." and v[5] == "." and v[6:].isdigit():
            iso = f"{v[6:]}-{v[3:5]}-{v[:2]}"
            if not valid_date(iso):
                raise Fail("invalid_date")
        else:
            try:
                iso = datetime.strptime(v, "%d.%m.%Y").date().isoformat()
            except ValueError:
                raise Fail("invalid_date") from None
        a["dob"] = iso
    v = sex.strip()
    if v not in NULLS:
        v = GENDER.get(v, v)
        if v not in GENDERS:
            raise Fail("invalid_gender")
        a["gender"] = v
    v = country.strip()
    if v not in NULLS:
        if len(v) != 2 or not (v.isascii() and v.isalpha()):
            raise Fail("invalid_country")
        a["country"] = v
    v = city.strip()
    if v not in NULLS:
        a["home_city"] = v
    v = language.strip()
    if v not in NULLS:
        a["language"] = v
    v = points.strip()
    a["loyalty_points"] = 0 if v in NULLS else to_int(v)
    v = balance.strip()
    if v not in NULLS:
        a["balance"] = to_float(v)
    v = vip.strip()
    if v not in NULLS:
        flag = VIP.get(v)
        if flag is None:
            flag = VIP_FOLDED.get(v.casefold())
            if flag is None:
                raise Fail("invalid_boolean")
        a["vip"] = flag
    v = newsletter.strip()
    if v not in NULLS:
        flag = NEWSLETTER.get(v)
        if flag is None:
            flag = NEWSLETTER_FOLDED.get(v.casefold())
            if flag is None:
                raise Fail("invalid_boolean")
        a["newsletter"] = flag
    v = interests.strip()
    if v not in NULLS:
        items = [item for item in map(str.strip, v.split(";")) if item]
        if items:
            for item in items:
                if len(item) > 255:
                    raise Fail("string_too_long")
            a["interests"] = items
    v = prefs.strip()
    if v not in NULLS:
        a["preferences"] = json_cell(v)
    v = tier.strip()
    if v not in NULLS:
        number = TIER.get(v)
        a["tier"] = to_int(v) if number is None else number
    v = created.strip()
    if v not in NULLS:
        if len(v) == 16 and v[2] == "." and v[5] == "." and v[10] == " " and v[13] == ":":
            a["signed_up_at"] = berlin_wall(f"{v[6:10]}-{v[3:5]}-{v[:2]}", f"{v[11:]}:00")
        else:
            a["signed_up_at"] = general_time(v, "%d.%m.%Y %H:%M", BERLIN)
    v = login.strip()
    if v not in NULLS:
        if len(v) == 19 and v[10] == "T" and v[13] == ":" and v[16] == ":" and v[17:].isdigit():
            a["last_login_at"] = berlin_wall(v[:10], v[11:])
        else:
            a["last_login_at"] = general_time(v, None, BERLIN)
    v = plan.strip()
    if v in NULLS:
        v = "basic"
    elif len(v) > 255:
        raise Fail("string_too_long")
    a["plan"] = v
    plan_value = v
    order = order_date.strip()
    order_time = None
    if order not in NULLS:
        if len(order) == 19 and order[10] == " " and order[13] == ":" and order[16] == ":":
            try:
                datetime.fromisoformat(order)
            except ValueError:
                raise Fail("invalid_time") from None
            a["last_order_on"] = order[:10]
            order_time = f"{order[:10]}T{order[11:]}+00:00"
        else:
            try:
                a["last_order_on"] = datetime.fromisoformat(order).date().isoformat()
            except ValueError:
                raise Fail("invalid_date") from None
            order_time = general_time(order, "%Y-%m-%d %H:%M:%S", UTC)
    a["crm_source"] = "legacy_crm"
    a["crm_schema"] = 3
    a["crm_import"] = CRM_IMPORT
    attributes = orjson.dumps(a)

    event = None
    v = updated.strip()
    if v not in NULLS:
        if len(v) == 19 and v[10] == "T":
            try:
                datetime.fromisoformat(v)
            except ValueError:
                raise Fail("invalid_time") from None
            when = v + "+00:00"
        else:
            when = general_time(v, None, UTC)
        ch: str | None = channel.strip()
        if ch in NULLS:
            ch = None
        else:
            ch = CHANNEL.get(ch, ch)
            if len(ch) > 255:
                raise Fail("string_too_long")
        event = orjson.dumps(
            {
                "external_id": cid,
                "_update_existing_only": False,
                "name": "crm_profile_synced",
                "time": when,
                "properties": {"plan": plan_value, "channel": ch},
            }
        )

    purchase = None
    product, cur, price = sku.strip(), currency.strip(), amount.strip()
    if order_time and product not in NULLS and cur not in NULLS and price not in NULLS:
        if len(product) > 255:
            raise Fail("invalid_product_id")
        cur = CURRENCY_MAP.get(cur, cur)
        if cur not in CURRENCIES:
            raise Fail("invalid_currency")
        p: dict[str, Any] = {
            "external_id": cid,
            "_update_existing_only": False,
            "product_id": product,
            "currency": cur,
            "price": to_float(price),
            "time": order_time,
        }
        v = qty.strip()
        quantity = 1 if v in NULLS else to_int(v)
        if not 1 <= quantity <= 100:
            raise Fail("invalid_quantity")
        p["quantity"] = quantity
        v = gift.strip()
        if v in NULLS:
            p["properties"] = {"store": "online"}
        else:
            flag = GIFT.get(v)
            if flag is None:
                flag = GIFT_FOLDED.get(v.casefold())
                if flag is None:
                    raise Fail("invalid_boolean")
            p["properties"] = {"gift": flag, "store": "online"}
        purchase = orjson.dumps(p)
    return attributes, event, purchase


def _body(attributes: list[bytes], events: list[bytes], purchases: list[bytes]) -> bytes:
    parts = []
    for name, objects in ((b"attributes", attributes), (b"events", events)):
        if objects:
            parts.append(b'"' + name + b'":[' + b",".join(objects) + b"]")
    if purchases:
        parts.append(b'"purchases":[' + b",".join(purchases) + b"]")
    return b"{" + b",".join(parts) + b"}"


# --- the pipeline --------------------------------------------------------------------------------


class Counts:
    rows = failed = objects = requests = refused = tries = 0


async def produce(path: str, queue: asyncio.Queue[bytes | None], counts: Counts) -> None:
    global _pick
    attributes: list[bytes] = []
    events: list[bytes] = []
    purchases: list[bytes] = []
    size = 0
    put = queue.put
    with open(path, encoding="utf-8", newline="") as source:
        reader = csv.reader(source)
        header = next(reader)
        _pick = operator.itemgetter(*(header.index(column) for column in COLUMNS))
        for row in reader:
            counts.rows += 1
            try:
                attribute, event, purchase = convert(row)
            except (Fail, ValueError, IndexError):
                counts.failed += 1
                continue
            has_event, has_purchase = event is not None, purchase is not None
            n = 1 + has_event + has_purchase
            added = (
                len(attribute) + (len(event) if event else 0) + (len(purchase) if purchase else 0)
            )
            if (
                len(attributes) == LIMIT_PER_ARRAY
                or len(events) + has_event > LIMIT_PER_ARRAY
                or len(purchases) + has_purchase > LIMIT_PER_ARRAY
                or len(attributes) + len(events) + len(purchases) + n > LIMIT_TOTAL
                or size + added > LIMIT_BYTES
            ):
                counts.objects += len(attributes) + len(events) + len(purchases)
                await put(_body(attributes, events, purchases))
                attributes, events, purchases, size = [], [], [], 0
            attributes.append(attribute)
            if has_event:
                events.append(event)  # type: ignore[arg-type]
            if has_purchase:
                purchases.append(purchase)  # type: ignore[arg-type]
            size += added + 3
    if attributes:
        counts.objects += len(attributes) + len(events) + len(purchases)
        await put(_body(attributes, events, purchases))


async def send(
    session: aiohttp.ClientSession,
    url: str,
    queue: asyncio.Queue[bytes | None],
    counts: Counts,
) -> None:
    while True:
        body = await queue.get()
        if body is None:
            return
        for attempt in range(3):
            counts.tries += 1
            async with session.post(url, data=body) as answer:
                text = await answer.read()
                status = answer.status
            if status < 300:
                if b'"errors"' in text:
                    counts.refused += len(orjson.loads(text).get("errors", ()))
                break
            if status != 429 and status < 500:
                raise SystemExit(f"HTTP {status}: {text[:200]!r}")
            await asyncio.sleep(0.5 * (attempt + 1))
        counts.requests += 1


async def pipeline(path: str, endpoint: str, key: str, concurrency: int, counts: Counts) -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        url = endpoint.rstrip("/") + "/users/track"
        workers = [
            asyncio.ensure_future(send(session, url, queue, counts)) for _ in range(concurrency)
        ]
        await produce(path, queue, counts)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("source")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", action="store_true", help="one JSON line of counts on stdout")
    args = parser.parse_args()
    key = os.environ.get("BRAZE_API_KEY", "sandbox-key")
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)  # as the importer sets it for a run
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    counts = Counts()
    started, cpu = time.perf_counter(), time.process_time()
    run(pipeline(args.source, args.endpoint, key, args.concurrency, counts))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    report = {
        **{"rows": counts.rows, "failed": counts.failed, "objects": counts.objects},
        **{"requests": counts.requests, "tries": counts.tries, "refused": counts.refused},
        **{"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)},
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"{counts.rows:,} rows ({counts.failed:,} failed), {counts.objects:,} objects in "
            f"{counts.requests:,} requests ({counts.refused} objects refused); {wall:.1f} s, "
            f"{counts.rows / wall:,.0f} rows/s, {counts.objects / wall:,.0f} objects/s, "
            f"CPU {cpu / max(counts.rows, 1) * 1e6:.2f} µs/row"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
