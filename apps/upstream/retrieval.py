"""Keyword retrieval over the reference documents found in a system prompt.

Deliberately simple and deterministic: passages are paragraphs (indexed together with the markdown
heading above them), terms are lower-cased accent-folded words cut to a 6-character stem, and a passage
scores the sum over the query terms it contains of IDF × a saturated term frequency.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from .language import STOPWORDS, fold_accents, words

_DOCUMENT_TAG = re.compile(r"<document\b[^>]*>(.*?)</document>", re.DOTALL | re.IGNORECASE)
_DOCUMENTS_TAG = re.compile(r"<documents\b[^>]*>(.*?)</documents>", re.DOTALL | re.IGNORECASE)
# Wrappers inside a document that are metadata, not content (Anthropic's recommended layout).
_METADATA_TAG = re.compile(r"<(source|title|document_index|metadata)\b[^>]*>.*?</\1>", re.DOTALL | re.IGNORECASE)
_ANY_TAG = re.compile(r"</?[A-Za-z_][\w:-]*(\s[^<>]*)?/?>")
_MARKDOWN_PREFIX = re.compile(r"^\s*(#{1,6}\s+|[-*+•]\s+|\d+[.)]\s+|>\s*)", re.MULTILINE)
_MARKDOWN_INLINE = re.compile(r"(\*\*|__|`+|\*|~~)")
_HEADING = re.compile(r"^\s*#{1,6}\s")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_STEM_LENGTH = 6
_MIN_PASSAGE_WORDS = 4
_MAX_PASSAGE_CHARS = 600
_ALL_STOPWORDS = frozenset().union(*STOPWORDS.values())


# Common support vocabulary in the other supported languages, mapped to the English word, so that a
# question in French still finds the English help-center passage (the answer quotes it as written).
TERM_ALIASES: dict[str, str] = {
    "remboursement": "refund",
    "rembourser": "refund",
    "rückerstattung": "refund",
    "erstattung": "refund",
    "reembolso": "refund",
    "rimborso": "refund",
    "terugbetaling": "refund",
    "restitutie": "refund",
    "réinitialiser": "reset",
    "reinitialiser": "reset",
    "zurücksetzen": "reset",
    "restablecer": "reset",
    "reimpostare": "reset",
    "redefinir": "reset",
    "passe": "password",
    "passwort": "password",
    "kennwort": "password",
    "contraseña": "password",
    "senha": "password",
    "wachtwoord": "password",
    "facture": "invoice",
    "rechnung": "invoice",
    "factura": "invoice",
    "fattura": "invoice",
    "fatura": "invoice",
    "factuur": "invoice",
    "abonnement": "subscription",
    "suscripción": "subscription",
    "abbonamento": "subscription",
    "assinatura": "subscription",
    "compte": "account",
    "konto": "account",
    "cuenta": "account",
    "conta": "account",
    "commande": "order",
    "bestellung": "order",
    "pedido": "order",
    "ordine": "order",
    "bestelling": "order",
    "livraison": "delivery",
    "lieferung": "delivery",
    "entrega": "delivery",
    "consegna": "delivery",
    "levering": "delivery",
    "annuler": "cancel",
    "kündigen": "cancel",
    "cancelar": "cancel",
    "annullare": "cancel",
    "opzeggen": "cancel",
    "paiement": "payment",
    "zahlung": "payment",
    "pago": "payment",
    "pagamento": "payment",
    "betaling": "payment",
}


def stem_terms(text: str) -> list[str]:
    return [_stem(word) for word in words(text) if len(word) > 2 and word not in _ALL_STOPWORDS]


@lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    return fold_accents(TERM_ALIASES.get(word, word))[:_STEM_LENGTH]


def plain_prose(text: str) -> str:
    """Drop tags and markdown decoration and collapse whitespace: support answers are plain prose."""
    text = _ANY_TAG.sub(" ", text)
    text = _MARKDOWN_PREFIX.sub("", text)
    text = _MARKDOWN_INLINE.sub("", text)
    return " ".join(text.split())


def extract_documents(system: str) -> list[str]:
    """Bodies of `<document>` elements, else the inside of `<documents>`, else the whole text."""
    documents = _DOCUMENT_TAG.findall(system)
    if not documents:
        documents = _DOCUMENTS_TAG.findall(system)
    if not documents:
        documents = [system]
    return [_METADATA_TAG.sub(" ", document) for document in documents]


def split_passages(document: str) -> list[str]:
    return [passage for _, passage in split_sections(document)]


def split_sections(document: str) -> list[tuple[str, str]]:
    """(heading, passage) pairs: paragraphs as plain prose, each with the markdown heading above it."""
    sections: list[tuple[str, str]] = []
    heading = ""
    for paragraph in re.split(r"\n\s*\n", document):
        prose = plain_prose(paragraph)
        if _HEADING.match(paragraph):
            heading = prose
        if len(prose.split()) < _MIN_PASSAGE_WORDS:
            continue
        sections.extend((heading, piece) for piece in _split_long(prose))
    return sections


def _split_long(prose: str) -> list[str]:
    if len(prose) <= _MAX_PASSAGE_CHARS:
        return [prose]
    pieces: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(prose):
        if current and len(current) + len(sentence) > _MAX_PASSAGE_CHARS:
            pieces.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        pieces.append(current)
    return pieces


# Term-frequency saturation (BM25's k1, without length normalisation: help-center paragraphs are all
# short, and favouring the shortest one picks passing mentions over the paragraph about the topic).
_TF_SATURATION = 1.2


@dataclass(frozen=True)
class PassageIndex:
    passages: tuple[str, ...]
    # term -> ((passage index, IDF × saturated term frequency), ...): a query touches only the passages
    # that contain one of its terms. A term repeated in a passage (or its heading) counts more than once.
    postings: dict[str, tuple[tuple[int, float], ...]]

    def best(self, query: str, limit: int = 3, relative_cutoff: float = 0.6) -> list[str]:
        """Up to `limit` passages: the best match plus those scoring at least `relative_cutoff` of it."""
        scores: dict[int, float] = {}
        for term in sorted(set(stem_terms(query))):  # a fixed order keeps float sums, hence ties, stable
            for index, weight in self.postings.get(term, ()):
                scores[index] = scores.get(index, 0.0) + weight
        ranked = sorted(((score, -index) for index, score in scores.items() if score > 0), reverse=True)
        if not ranked:
            return []
        top_score = ranked[0][0]
        return [self.passages[-order] for score, order in ranked[:limit] if score >= relative_cutoff * top_score]


def build_index(passages: list[str], headings: list[str] | None = None) -> PassageIndex:
    """`headings[i]` (the section title above passage i) is matched like the passage's own words."""
    labels = headings or [""] * len(passages)
    counts = [Counter(stem_terms(f"{label} {passage}")) for label, passage in zip(labels, passages, strict=True)]
    document_frequency = Counter(term for passage_counts in counts for term in passage_counts)
    count = max(len(passages), 1)
    idf = {term: math.log(1 + count / frequency) for term, frequency in document_frequency.items()}
    postings: dict[str, list[tuple[int, float]]] = {}
    for index, passage_counts in enumerate(counts):
        for term, frequency in passage_counts.items():
            weight = idf[term] * frequency * (_TF_SATURATION + 1) / (frequency + _TF_SATURATION)
            postings.setdefault(term, []).append((index, weight))
    return PassageIndex(tuple(passages), {term: tuple(entries) for term, entries in postings.items()})


@lru_cache(maxsize=256)
def index_for_system(system: str) -> PassageIndex:
    """Cached per system text: batch jobs send thousands of requests with the same documents."""
    sections = [section for document in extract_documents(system) for section in split_sections(document)]
    return build_index([passage for _, passage in sections], [heading for heading, _ in sections])
