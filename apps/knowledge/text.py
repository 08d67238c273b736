"""Language-aware terms for the SQLite index (PostgreSQL stems with its own text-search configurations).

FTS5 ships only an English Porter stemmer, so articles are indexed as terms made here: lower-cased,
accent-folded words without the language's stop words, with common inflection suffixes stripped and cut
to a fixed stem length. Crude next to Snowball, but it makes "Kreditkarte"/"Kreditkarten" and
"facture"/"factures" one term, which is what retrieval needs, with no extra dependency.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# PostgreSQL text-search configuration per article language; "simple" for anything else.
PG_CONFIGS: dict[str, str] = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
}

STEM_LENGTH = 7
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "a an and are as at be by can do does for from have how i in is it my of on or our so the to was we "
        "what when where which who why will with you your me can't cannot please hi hello thanks not".split()
    ),
    "de": frozenset(
        "der die das den dem des ein eine einen einem einer und oder ist sind wie was wo wer warum ich mein "
        "meine meinen mich mir du dein sie ihr wir uns zu im in am an auf für mit von bei kann können "
        "nicht bitte hallo danke es ist hat habe haben wird werden".split()
    ),
    "fr": frozenset(
        "le la les un une des du de et ou est sont comment quoi que qui quand pourquoi je mon ma mes me "
        "moi tu ton ta vous votre vos nous nos il elle au aux en dans sur pour avec par pas ne plus puis "
        "peux peut bonjour merci svp ce cette ces".split()
    ),
}

# Longest first; a suffix is stripped only when at least 4 characters remain.
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "en": ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s"),
    "de": ("ungen", "ung", "ern", "en", "er", "es", "e", "n", "s"),
    "fr": ("ements", "ement", "ations", "ation", "es", "s", "e", "x"),
}
_MIN_STEM = 4


def fold(text: str) -> str:
    """Lower case without accents or umlauts' dots: "Überweisung" → "uberweisung"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=131_072)
def stem(word: str, language: str) -> str:
    for suffix in _SUFFIXES.get(language, ()):
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            word = word[: -len(suffix)]
            break
    return fold(word)[:STEM_LENGTH]


def terms(text: str, language: str) -> list[str]:
    """The index terms of `text` read as `language`, in order, repeats kept (they weigh in bm25)."""
    stop = STOPWORDS.get(language, frozenset())
    return [stem(word, language) for word in _WORD.findall(text.casefold()) if len(word) > 1 and word not in stop]


def pg_config(language: str) -> str:
    return PG_CONFIGS.get(language, "simple")
