"""Mask personal data in transcripts before they leave for the nightly classification (TRIAGE_MASK_PII).

The classifier needs the gist of a conversation, not who the customer is: emails, card numbers and phone
numbers are replaced by placeholders. Deliberately conservative about what counts as a card (13-19 digits
passing the Luhn check) so order numbers and error codes survive; phone numbers need 7+ digits.
"""

import re

EMAIL_PLACEHOLDER = "[email]"
CARD_PLACEHOLDER = "[card]"
PHONE_PLACEHOLDER = "[phone]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by single spaces or dashes (4-4-4-4, 4-6-5, …).
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# An optional +country code, then digits with spaces, dots, dashes or one pair of parentheses.
_PHONE = re.compile(r"(?<![\w+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){5,13}(?![\w-])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return CARD_PLACEHOLDER if _luhn_valid(digits) else match.group(0)


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if len(digits) < 7 or _ISO_DATE.fullmatch(match.group(0)):
        return match.group(0)
    return PHONE_PLACEHOLDER


def pii_mask(text: str) -> str:
    """Replace emails, card numbers (Luhn-valid) and phone numbers in `text` with placeholders."""
    text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    text = _CARD.sub(_mask_card, text)
    return _PHONE.sub(_mask_phone, text)
