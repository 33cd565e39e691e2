"""Rows for the state's tests: items, events, purchases, whole nights drawn by hypothesis, and
the state file's keys (a user's, a delivered event's)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from importer.models import BrazeObject, Item, RowRef


def item(
    line: int,
    user: str = "u1",
    attributes: dict[str, Any] | None = None,
    events: list[BrazeObject] | None = None,
    purchases: list[BrazeObject] | None = None,
) -> Item:
    attrs = () if attributes is None else ({"external_id": user, **attributes},)
    return Item(
        ref=RowRef("export.csv", line),
        record={},
        user=f"external_id:{user}",
        attributes=attrs,
        events=tuple(events or ()),
        purchases=tuple(purchases or ()),
    )


def event(
    user: str = "u1", name: str = "order", time: str = "2024-05-01T10:00:00+00:00", **props: Any
) -> BrazeObject:
    return {"external_id": user, "name": name, "time": time, "properties": props}


def purchase(user: str = "u1", price: float = 9.5, **extra: Any) -> BrazeObject:
    return {
        "external_id": user,
        "product_id": "sku-1",
        "time": "2024-05-01T10:00:00+00:00",
        "price": price,
        "currency": "EUR",
        **extra,
    }


def key(n: int) -> str:
    return f"xU{n:06d}"


def event_key(n: int, k: int) -> bytes:
    return n.to_bytes(5, "big") + k.to_bytes(8, "big")


_OPERATOR_KEYS = {"inc", "add", "remove", "$add", "$remove", "$update"}
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=4).filter(lambda k: k not in _OPERATOR_KEYS), inner, max_size=3
        )
    ),
    max_leaves=6,
)
_names = st.sampled_from(["first_name", "city", "points", "vip", "prefs", "email", "tags"])


@st.composite
def nights(draw: st.DrawFn) -> list[Item]:
    users = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6, unique=True))
    rows = []
    for line, user in enumerate(users, start=2):
        attributes = draw(st.none() | st.dictionaries(_names, _values, max_size=5))
        events = draw(
            st.lists(
                st.builds(event, st.just(user), st.sampled_from(["a", "b"]), order=_scalars),
                max_size=3,
            )
        )
        purchases = draw(
            st.lists(st.builds(purchase, st.just(user), st.floats(0, 100)), max_size=2)
        )
        rows.append(item(line, user, attributes, events, purchases))
    return rows


_small_values = st.sampled_from([None, 0, 1, 1.5, "x", "", [1], {"k": 1}, True])


@st.composite
def exports(draw: st.DrawFn) -> list[tuple[list[Item], list[bool], int]]:
    """A few nights: each an export (rows of three users), which rows Braze refuses, batch size."""
    nights = []
    for _ in range(draw(st.integers(1, 4))):
        rows = []
        for line in range(2, 2 + draw(st.integers(1, 8))):
            user = draw(st.sampled_from(["u1", "u2", "u3"]))
            attributes = draw(st.none() | st.dictionaries(st.sampled_from("abc"), _small_values))
            names = st.sampled_from(["signup", "order"])
            times = st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"])
            events = draw(st.lists(st.builds(event, st.just(user), names, times), max_size=2))
            rows.append(item(line, user, attributes, events))
        refused = draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
        nights.append((rows, refused, draw(st.integers(1, 4))))
    last_rows, _, batch = nights[-1]
    nights[-1] = (last_rows, [False] * len(last_rows), batch)  # a clean night to check against
    return nights
