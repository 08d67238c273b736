"""Demo content for the Acme Corp support assistant.

Everything in this module and in the sibling ``demo_content/`` directory is
*demo data* for the fictional Acme Corp: the assistant persona, business
rules, output format, few-shot examples, the reference knowledge base, the
transcript-classifier prompt parts, sample conversation transcripts and three
demo end-user accounts (alice, bob, carol). None of it describes real people,
companies, prices or policies.

It is loaded by the ``seed_demo`` management command. This module deliberately
has no Django imports so it can be used from plain Python (tests, scripts,
benchmarks) without configuring settings.

Files in ``demo_content/`` are plain ASCII text:

* ``persona.txt``, ``business_rules.txt``, ``output_format.txt``,
  ``few_shot.txt`` -- the assistant system-prompt parts. Few-shot examples use
  ``<example><user>...</user><assistant>...</assistant></example>`` blocks.
* ``classifier_persona.txt``, ``classifier_rules.txt``,
  ``classifier_output_format.txt``, ``classifier_few_shot.txt`` -- the
  transcript-classifier prompt parts (same few-shot format; the assistant
  turn is the expected JSON object).
* ``knowledge_base/*.md`` -- reference documents; the first line is
  ``# Title``, the rest is the body.
* ``transcripts.json`` -- sample conversations, see :func:`load_transcripts`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CONTENT_DIR",
    "DEMO_ACCOUNTS",
    "KNOWLEDGE_BASE_DIR",
    "DemoAccount",
    "DemoInvoice",
    "DemoTicket",
    "get_demo_account",
    "knowledge_base_documents",
    "load_text",
    "load_transcripts",
]

CONTENT_DIR: Path = Path(__file__).resolve().parent / "demo_content"
KNOWLEDGE_BASE_DIR: Path = CONTENT_DIR / "knowledge_base"


def load_text(name: str) -> str:
    """Return the stripped text of ``demo_content/<name>``.

    ``name`` may be given with or without the ``.txt`` suffix, e.g.
    ``load_text("persona")`` or ``load_text("persona.txt")``. Only files
    inside :data:`CONTENT_DIR` can be read.
    """
    filename = name if Path(name).suffix else f"{name}.txt"
    path = (CONTENT_DIR / filename).resolve()
    if CONTENT_DIR.resolve() not in path.parents:
        raise ValueError(f"demo content name escapes the content directory: {name!r}")
    return path.read_text(encoding="utf-8").strip()


def knowledge_base_documents() -> list[tuple[str, str]]:
    """Return the knowledge base as ``(title, body)`` pairs, sorted by filename.

    The title is taken from the document's first ``# `` heading line (falling
    back to the filename); the body is the remaining text, stripped.
    """
    documents: list[tuple[str, str]] = []
    for path in sorted(KNOWLEDGE_BASE_DIR.glob("*.md"), key=lambda p: p.name):
        text = path.read_text(encoding="utf-8").strip()
        first, _, rest = text.partition("\n")
        if first.startswith("# "):
            title, body = first[2:].strip(), rest.strip()
        else:
            title, body = path.stem.split("-", 1)[-1].replace("-", " ").title(), text
        documents.append((title, body))
    return documents


def load_transcripts() -> list[dict[str, Any]]:
    """Return the sample transcripts from ``transcripts.json``.

    Each item is ``{"username": "alice"|"bob"|"carol", "days_ago": int,
    "title": str, "turns": [{"role": "user"|"assistant", "text": str}, ...]}``.
    """
    data = json.loads((CONTENT_DIR / "transcripts.json").read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError("transcripts.json must contain a JSON list")
    return data


@dataclass(frozen=True)
class DemoInvoice:
    """An invoice of a demo account. Amounts are integer cents; dates are ISO strings."""

    number: str
    amount_cents: int
    currency: str
    status: str  # "paid" | "open"
    issued_on: str
    due_on: str


@dataclass(frozen=True)
class DemoTicket:
    """An open support ticket of a demo account."""

    subject: str
    status: str  # "open" | "pending"
    opened_on: str


@dataclass(frozen=True)
class DemoAccount:
    """A demo end user of Acme Workspace and the account facts Ava may see."""

    username: str
    email: str
    full_name: str
    plan: str  # "free" | "pro" | "enterprise"
    billing_status: str  # "active" | "past_due"
    language: str  # ISO 639-1
    company: str
    seats: int
    invoices: tuple[DemoInvoice, ...] = ()
    open_tickets: tuple[DemoTicket, ...] = ()


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount(
        username="alice",
        email="alice@example.com",
        full_name="Alice Johnson",
        plan="free",
        billing_status="active",
        language="en",
        company="Johnson Illustration",
        seats=2,
        # Free plan, paid storage add-on: she has invoices to ask about.
        invoices=(
            DemoInvoice("INV-2026-01390", 900, "USD", "paid", "2026-09-05", "2026-09-19"),
            DemoInvoice("INV-2026-01560", 900, "USD", "paid", "2026-10-05", "2026-10-19"),
            DemoInvoice("INV-2026-01741", 900, "USD", "paid", "2026-11-05", "2026-11-19"),
        ),
        open_tickets=(
            DemoTicket(
                subject="Uploads paused with error E-1057 (storage full)",
                status="open",
                opened_on="2026-11-22",
            ),
        ),
    ),
    DemoAccount(
        username="bob",
        email="bob@example.com",
        full_name="Bob Smith",
        plan="pro",
        billing_status="past_due",
        language="en",
        company="Smith & Sons Plumbing",
        seats=5,
        invoices=(
            DemoInvoice("INV-2026-01412", 14500, "USD", "paid", "2026-09-15", "2026-09-29"),
            DemoInvoice("INV-2026-01587", 14500, "USD", "paid", "2026-10-15", "2026-10-29"),
            DemoInvoice("INV-2026-01766", 14500, "USD", "open", "2026-11-15", "2026-11-29"),
        ),
        open_tickets=(
            DemoTicket(
                subject="Card declined on invoice INV-2026-01766",
                status="open",
                opened_on="2026-11-16",
            ),
        ),
    ),
    DemoAccount(
        username="carol",
        email="carol@example.com",
        full_name="Carol Dubois",
        plan="enterprise",
        billing_status="active",
        language="fr",
        company="Lumiere Conseil SARL",
        seats=25,
        invoices=(
            DemoInvoice("INV-2026-01398", 197500, "USD", "paid", "2026-09-03", "2026-09-17"),
            DemoInvoice("INV-2026-01560", 197500, "USD", "paid", "2026-10-03", "2026-10-17"),
            DemoInvoice("INV-2026-01731", 197500, "USD", "paid", "2026-11-03", "2026-11-17"),
        ),
        open_tickets=(
            DemoTicket(
                subject="SSO: erreur E-2001 apres chaque connexion Okta",
                status="open",
                opened_on="2026-11-20",
            ),
            DemoTicket(
                subject="Migration de l'espace de travail vers la region EU",
                status="pending",
                opened_on="2026-11-12",
            ),
        ),
    ),
)


def get_demo_account(username: str) -> DemoAccount | None:
    """Return the demo account with this username, or ``None``."""
    return next((a for a in DEMO_ACCOUNTS if a.username == username), None)
