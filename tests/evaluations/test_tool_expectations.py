"""A case can expect a tool call: the tool's name and arguments, checked against the answer's tool_use blocks."""

import anthropic
import pytest
from django.core.exceptions import ValidationError

from apps.evaluations import services
from apps.evaluations.checks import tool_call_check
from apps.evaluations.models import CaseResult, Run
from apps.llm.types import ToolCall
from apps.prompts.models import PromptVersion
from tests.conftest import received_requests
from tests.evaluations.factories import CaseFactory, EvaluationSetFactory, versions

pytestmark = pytest.mark.django_db

RESEND = ToolCall(id="toolu_1", name="resend_invoice", input={"invoice_number": "INV-2041"})


@pytest.mark.parametrize(
    ("calls", "arguments", "ok"),
    [
        ([RESEND], {"invoice_number": "INV-2041"}, True),
        ([RESEND], {"invoice_number": " inv-2041 "}, True),  # the same invoice, however it is written
        ([RESEND], {}, True),  # only the tool is expected
        ([RESEND], {"invoice_number": "INV-2090"}, False),
        ([ToolCall(id="t", name="list_invoices", input={})], {}, False),
        ([], {}, False),
        ([ToolCall(id="t", name="resend_invoice", input={}), RESEND], {"invoice_number": "INV-2041"}, True),
    ],
)
def test_tool_call_check(calls, arguments, ok):
    check = tool_call_check(calls=calls, name="resend_invoice", arguments=arguments)
    assert (check.check, check.ok) == ("tool_call", ok)


def test_a_failed_tool_check_says_what_was_called():
    check = tool_call_check(calls=[RESEND], name="resend_invoice", arguments={"invoice_number": "INV-2090"})
    assert "INV-2090" in check.detail and "INV-2041" in check.detail


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"expect_tool": "wire_money"}, "expect_tool"),
        ({"expect_tool": "resend_invoice", "expect_tool_arguments": {"amount": 5}}, "expect_tool_arguments"),
        ({"expect_tool_arguments": {"invoice_number": "INV-1"}}, "expect_tool_arguments"),
        ({"expect_tool": "resend_invoice", "expect_tool_arguments": ["INV-1"]}, "expect_tool_arguments"),
    ],
)
def test_tool_expectations_are_validated(fields, problem):
    evaluation_set = EvaluationSetFactory()
    with pytest.raises(ValidationError) as error:
        services.case_create(evaluation_set=evaluation_set, name="x", turns=["Resend my invoice"], **fields)
    assert problem in error.value.message_dict


def test_an_expected_tool_alone_is_an_expectation():
    case = services.case_create(
        evaluation_set=EvaluationSetFactory(),
        name="resend",
        turns=["Please send me invoice INV-2041 again."],
        expect_tool="resend_invoice",
        expect_tool_arguments={"invoice_number": "INV-2041"},
    )
    assert case.pk


def _tool_reply(text: str, tool_input: dict) -> anthropic.types.Message:
    """A reply as the API returns it when the model calls a tool (the SDK's own type)."""
    content = [{"type": "tool_use", "id": "toolu_01", "name": "resend_invoice", "input": tool_input}]
    if text:
        content.insert(0, {"type": "text", "text": text})
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": content,
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )


@pytest.mark.parametrize(("invoice", "passed"), [("INV-2041", True), ("INV-2090", False)])
def test_a_result_that_called_the_tool_is_graded_on_its_arguments(invoice, passed):
    _, draft = versions()
    case = CaseFactory(
        turns=["Please send me invoice INV-2041 again."],
        must_include=[],
        rubric=[],
        expect_tool="resend_invoice",
        expect_tool_arguments={"invoice_number": "INV-2041"},
    )
    run = Run.objects.create(evaluation_set=case.evaluation_set, candidate=draft, mode=Run.Mode.QUICK, k=1)
    result = CaseResult.objects.create(run=run, case=case, version=draft, attempt=1, status=CaseResult.Status.ANSWERED)
    result.transcript = [{"role": "user", "text": case.turns[0]}]
    message = _tool_reply("", {"invoice_number": invoice})
    services.result_apply_reply(result, "answer", "", services.message_tool_uses(message))

    graded = services.result_grade(result=result)

    assert graded.transcript[-1]["tool_uses"] == [
        {"id": "toolu_01", "name": "resend_invoice", "input": {"invoice_number": invoice}}
    ]
    assert graded.status == CaseResult.Status.GRADED and graded.passed is passed
    assert [check["check"] for check in graded.checks] == ["tool_call"]


def test_a_quick_run_offers_the_versions_tools_and_fails_a_case_whose_tool_was_not_called(llm_upstream):
    _, draft = versions()
    PromptVersion.objects.filter(pk=draft.pk).update(tools=["list_invoices", "resend_invoice"])
    evaluation_set = EvaluationSetFactory()
    CaseFactory(
        evaluation_set=evaluation_set,
        turns=["How much does the Pro plan cost?"],
        rubric=[],
        expect_tool="resend_invoice",
    )
    run = services.run_start(evaluation_set=evaluation_set, candidate=draft, actor=None, mode=Run.Mode.QUICK, k=1)
    run = services.run_quick(run=run)

    result = run.results.get(version=draft)
    assert result.passed is False
    assert {"check": "tool_call", "ok": False, "detail": "expected resend_invoice, called no tool"} in result.checks
    bodies = [r["body"] for r in received_requests(llm_upstream, 50) if r["path"] == "/v1/messages"]
    offered = [[tool["name"] for tool in body.get("tools", [])] for body in bodies]
    assert ["list_invoices", "resend_invoice"] in offered  # the candidate's answer request
    assert [] in offered  # the live version has no tools


def test_a_tool_only_turn_is_history_for_the_next_customer_turn(llm_upstream):
    _, draft = versions()
    case = CaseFactory(turns=["Resend INV-2041 please.", "Thanks, did it go out?"], rubric=[])
    run = Run.objects.create(evaluation_set=case.evaluation_set, candidate=draft, mode=Run.Mode.QUICK, k=1)
    result = CaseResult.objects.create(run=run, case=case, version=draft, attempt=1)
    result.transcript = [
        {"role": "user", "text": case.turns[0]},
        {"role": "assistant", "text": "", "tool_uses": [{"id": "t", "name": "resend_invoice", "input": {}}]},
        {"role": "user", "text": case.turns[1]},
    ]
    params, _ = services.result_step_params(result, "answer", draft.to_parts())
    assistant = [m for m in params["messages"] if m["role"] == "assistant"]
    assert "(called resend_invoice)" in str(assistant[0]["content"])


def test_a_quick_run_checks_the_tool_the_model_called_and_its_arguments(llm_upstream):
    _, draft = versions()
    PromptVersion.objects.filter(pk=draft.pk).update(tools=["list_invoices", "resend_invoice"])
    evaluation_set = EvaluationSetFactory()
    right = CaseFactory(
        evaluation_set=evaluation_set,
        turns=["Please resend invoice INV-2041 to me."],
        must_include=[],
        rubric=[],
        expect_tool="resend_invoice",
        expect_tool_arguments={"invoice_number": "INV-2041"},
    )
    wrong = CaseFactory(
        evaluation_set=evaluation_set,
        turns=["Please resend invoice INV-2090 to me."],
        must_include=[],
        rubric=[],
        expect_tool="resend_invoice",
        expect_tool_arguments={"invoice_number": "INV-2041"},
    )
    run = services.run_start(evaluation_set=evaluation_set, candidate=draft, actor=None, mode=Run.Mode.QUICK, k=1)
    run = services.run_quick(run=run)

    passed = {r.case_id: r for r in run.results.filter(version=draft)}
    assert passed[right.pk].passed is True
    assert passed[right.pk].transcript[-1]["tool_uses"][0]["input"] == {"invoice_number": "INV-2041"}
    assert passed[wrong.pk].passed is False
    assert "INV-2090" in next(c["detail"] for c in passed[wrong.pk].checks if c["check"] == "tool_call")
    # The live version offers no tools: it cannot pass a case that expects one.
    assert all(r.passed is False for r in run.results.exclude(version=draft))


def test_the_demo_action_cases_pass_on_the_demo_assistant_with_its_tools(llm_upstream):
    from apps.actions.registry import tools
    from apps.prompts.services import prompt_seed_defaults, prompt_version_create_draft, prompt_version_seed_tools

    prompt_seed_defaults()
    live = prompt_version_seed_tools(slug="support-assistant", tool_names=list(tools()))
    draft = prompt_version_create_draft(prompt=live.prompt, based_on=live, actor=None, change_note="same")
    demo = services.evaluation_set_seed_demo()
    actions = EvaluationSetFactory()
    for case in demo.cases.filter(tags="actions"):
        case.pk, case.evaluation_set = None, actions
        case.save()
    run = services.run_start(evaluation_set=actions, candidate=draft, actor=None, mode=Run.Mode.QUICK, k=1)
    run = services.run_quick(run=run)
    results = list(run.results.all())
    assert len(results) == 4  # two cases, draft and live
    assert all(result.passed for result in results), [result.checks for result in results]
