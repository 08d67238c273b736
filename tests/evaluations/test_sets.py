"""Sets and cases: validation keeps bad cases out, the demo set covers the adversarial ground."""

import pytest
from django.core.exceptions import ValidationError

from apps.evaluations import services
from apps.evaluations.checks import answer_language, run_checks
from apps.evaluations.demo import DEMO_CASES
from tests.evaluations.factories import EvaluationSetFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"turns": [], "must_include": ["x"]}, "either customer turns or"),
        ({"turns": ["hi"], "goal": "refund", "must_include": ["x"]}, "either customer turns or"),
        ({"turns": ["hi"]}, "at least one expectation"),
        ({"turns": "hi", "must_include": ["x"]}, "list of non-empty strings"),
        ({"turns": ["hi"], "must_include": [""]}, "list of non-empty strings"),
        ({"turns": ["hi"], "language": "english"}, "two-letter"),
        ({"turns": ["hi"], "must_include": ["$29"], "must_not_include": ["$29"]}, "both required and forbidden"),
        ({"goal": "refund", "persona": "busy", "max_turns": 0, "rubric": ["ok"]}, "1 to 8"),
        ({"turns": ["hi"], "rubric": ["ok"], "account_data": ["plan"]}, "object of field"),
    ],
)
def test_invalid_cases_are_refused_with_a_clear_error_and_nothing_saved(fields, message):
    evaluation_set = EvaluationSetFactory()
    with pytest.raises(ValidationError) as raised:
        services.case_create(evaluation_set=evaluation_set, name="bad", **fields)
    assert message in str(raised.value)
    assert evaluation_set.cases.count() == 0


def test_demo_set_has_thirty_valid_cases_including_adversarial_ones_and_seeds_once():
    first = services.evaluation_set_seed_demo()
    again = services.evaluation_set_seed_demo()
    assert first.pk == again.pk
    assert first.cases.count() == len(DEMO_CASES) >= 30
    tags = " ".join(first.cases.values_list("tags", flat=True))
    for kind in ("injection", "privacy", "competitors", "non-english", "simulated"):
        assert kind in tags
    assert first.cases.filter(language="fr").exists() and first.cases.exclude(goal="").count() >= 2


def test_checks_find_facts_forbidden_facts_language_and_handoff():
    checks = run_checks(
        answers=["Bonjour, vous avez 30 jours pour demander un remboursement. Notre équipe vous répondra."],
        must_include=["30 jours"],
        must_not_include=["INV-3001"],
        language="fr",
        expect_handoff=True,
    )
    assert [(c.check, c.ok) for c in checks] == [
        ("must_include", True),
        ("must_not_include", True),
        ("language", True),
        ("handoff", True),
    ]
    failed = run_checks(
        answers=["Your invoice INV-3001 is paid."],
        must_include=["$29"],
        must_not_include=["inv-3001"],
        language="de",
        expect_handoff=True,
    )
    assert not any(c.ok for c in failed)
    assert answer_language("Wo finde ich meine Rechnung und die Preise für das Konto?") == "de"
