"""Words in a sampled column, for ``init-mapping`` (see importer.mapping.column_types): yes/no
flags in several languages, lists inside a cell, and few-valued columns that hold a state.

A flag column becomes ``boolean``, with ``true`` / ``false`` lists when its words are not the
mapping's defaults (``ja`` / ``nein``). A cell holding items between one separator (``|``; ``;``
in a comma file; ``,`` in a semicolon file) becomes an ``array`` when the items are short and
come from a vocabulary (they repeat across rows, as tags and interests do; free text does not).
A state column (``aktiv`` / ``inaktiv`` / ``gesperrt``) stays text, with a ``map`` suggested.
"""

from __future__ import annotations

import re

from importer.mapping.guess import Guess, example, fits, misfits
from importer.mapping.naming import snake_case
from importer.mapping.values import DEFAULT_FALSE, DEFAULT_TRUE

TRUE_WORDS = (*DEFAULT_TRUE, "ja", "j", "oui", "si", "sí", "wahr", "on")
FALSE_WORDS = (*DEFAULT_FALSE, "nein", "non", "falsch", "off")
_COUNT_NAME = re.compile(
    r"(^|_)(count|qty|quantity|points|punkte|score|total|amount|anzahl|menge|num|number|orders)"
    r"($|_)"
)
_ITEM_CHARS = 40  # an item of a list is at most this long ...
_ITEM_WORDS = 4  # ... and has at most this many words
_STATE_WORD = re.compile(r"[^\W\d_][\w-]{0,23}( [^\W\d_][\w-]{0,23})?")
MAX_STATES = 8
STATE_NAMES = {
    **dict.fromkeys(("aktiv", "actif", "activo", "attivo", "enabled"), "active"),
    **dict.fromkeys(("inaktiv", "inactif", "inactivo", "disabled"), "inactive"),
    **dict.fromkeys(("gesperrt", "bloqué", "bloque", "bloqueado", "locked"), "blocked"),
    **dict.fromkeys(("gelöscht", "geloescht", "supprimé", "supprime"), "deleted"),
    **dict.fromkeys(("gekündigt", "gekuendigt", "storniert", "résilié"), "cancelled"),
    **dict.fromkeys(("neu", "nouveau"), "new"),
    **dict.fromkeys(("offen", "ouvert"), "open"),
    **dict.fromkeys(("geschlossen", "fermé"), "closed"),
    **dict.fromkeys(("pausiert", "ruhend"), "paused"),
    **dict.fromkeys(("ausstehend", "wartend", "en attente"), "pending"),
}
# Words that make a few-valued column a state (with the names above, either side).
STATE_WORDS = frozenset(
    {
        *STATE_NAMES,
        *STATE_NAMES.values(),
        *("suspended", "churned", "trial", "expired", "archived", "verified", "unverified"),
        *("lead", "prospect", "customer", "dormant", "banned", "gekuendigt", "abgelaufen"),
    }
)


# Consent values that say subscribed / unsubscribed outright, whatever the column's name.
CONSENT_WORDS = {
    **dict.fromkeys(("subscribed", "opt-in", "opt in", "optin", "opted-in", "opted_in"), True),
    **dict.fromkeys(("unsubscribed", "opt-out", "opt out", "optout", "opted-out"), False),
    **dict.fromkeys(("opted_out", "abgemeldet", "désabonné"), False),
}


def consent_map(
    distinct: tuple[str, ...] | None, named_like_consent: bool
) -> dict[str, str] | None:
    """``{cell: "subscribed" | "unsubscribed"}`` for a column of consent values: opt-in words, or
    yes/no words in a column named like consent; None when some value says neither."""
    if not distinct:
        return None
    words = {**CONSENT_WORDS}
    if named_like_consent:
        words |= dict.fromkeys(TRUE_WORDS, True) | dict.fromkeys(FALSE_WORDS, False)
    elif not any(text.casefold() in CONSENT_WORDS for text in distinct):
        return None
    states = {text: words.get(text.casefold()) for text in distinct}
    if None in states.values():
        return None
    return {text: "subscribed" if on else "unsubscribed" for text, on in states.items()}


def boolean_guess(texts: list[str], name: str) -> Guess | None:
    words = [text.casefold() for text in texts]
    seen = set(words)
    known = seen & {*TRUE_WORDS, *FALSE_WORDS}
    if not known or (len(known) == 1 and len(next(iter(known))) == 1):
        return None  # a column of "F" only is more likely a code than a yes/no
    if known <= {"0", "1"} and (len(known) == 1 or _COUNT_NAME.search(name)):
        return None  # 0 and 1 counted
    bad = [text for text, word in zip(texts, words, strict=True) if word not in known]
    if not fits(len(texts) - len(bad), len(texts)):
        return None
    options: dict[str, list[str]] = {}
    if not known <= {*DEFAULT_TRUE, *DEFAULT_FALSE}:
        for option, side in (("true", TRUE_WORDS), ("false", FALSE_WORDS)):
            listed = sorted(word for word in known if word in side)
            if listed:
                options[option] = listed
    note = misfits(f"yes/no values ({', '.join(sorted(known))})", bad, len(texts))
    return Guess("boolean", note, options=options, bad=len(bad))


def list_guess(texts: list[str], delimiter: str | None) -> Guess | None:
    separators = ["|"]
    if delimiter != ";":
        separators.append(";")
    if delimiter in (";", "\t"):
        separators.append(",")
    for separator in separators:
        guess = _list_of(texts, separator)
        if guess is not None:
            return guess
    return None


def _list_of(texts: list[str], separator: str) -> Guess | None:
    holding = sum(separator in text for text in texts)
    if holding < max(1, len(texts) // 20):
        return None
    items: list[str] = []
    bad: list[str] = []
    for text in texts:
        parts = [part.strip() for part in text.split(separator)]
        if all(_item(part, separator) for part in parts):
            items.extend(part for part in parts if part)
        else:
            bad.append(text)
    if not fits(len(texts) - len(bad), len(texts)) or not items:
        return None
    distinct = len(set(items))
    if len(items) >= 10 and distinct > len(items) // 2:
        return None  # every item new: free text with punctuation, not a vocabulary
    longest = max(len([p for p in text.split(separator) if p.strip()]) for text in texts)
    shown = next(text for text in texts if separator in text)
    note = f"lists separated by {separator!r} (e.g. {example(shown)}; {distinct} distinct items"
    note += f", up to {longest} per cell)"
    options = {"separator": separator}
    return Guess("array", misfits(note, bad, len(texts)), options=options, bad=len(bad))


def _item(part: str, separator: str) -> bool:
    if len(part) > _ITEM_CHARS or len(part.split()) > _ITEM_WORDS:
        return False
    # "12,50" in a semicolon file is a decimal comma, not a list of two numbers.
    return not (separator == "," and part.replace(".", "").isdigit())


def state_map(distinct: tuple[str, ...] | None, filled: int) -> dict[str, str] | None:
    """A map to suggest for a column of a few repeated words, some of them a state's (``aktiv``,
    ``Suspended``): each to its English, lower-case name. None for anything else."""
    if distinct is None or not 2 <= len(distinct) <= MAX_STATES or filled < 2 * len(distinct):
        return None
    if not all(_STATE_WORD.fullmatch(value) for value in distinct):
        return None
    if not any(value.casefold() in STATE_WORDS for value in distinct):
        return None  # few values, but not a state's (plans, regions, cities)
    suggested = {
        value: STATE_NAMES.get(value.casefold()) or snake_case(value) or value for value in distinct
    }
    if all(value == name for value, name in suggested.items()):
        return None  # the words are already what a person would send
    return suggested
