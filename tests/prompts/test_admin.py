"""The prompts admin as staff use it: pages render, actions confirm and audit, permissions hold."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from apps.llm.models import LLMCall
from apps.prompts import services
from apps.prompts.models import PromptAuditLog, PromptVersion
from tests.prompts.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

Status = PromptVersion.Status


def url(name, *args):
    return reverse(f"admin:prompts_promptversion_{name}", args=args)


@pytest.fixture
def seeded():
    services.prompt_seed_defaults()
    return PromptVersion.objects.get(prompt__slug="support-assistant")


@pytest.fixture
def admin_user():
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def staff_with(*codenames):
    user = StaffFactory()
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="prompts", codename__in=codenames))
    return user


def draft_from(version, **parts):
    return services.prompt_version_create_draft(prompt=version.prompt, based_on=version, actor=None, **parts)


def form_data(version, **overrides):
    """The change form's POST body for a draft, reference documents included (inline formset)."""
    documents = list(version.reference_documents.order_by("position", "id"))
    data = {
        "major": version.major,
        "minor": version.minor,
        "patch": version.patch,
        "persona": version.persona,
        "business_rules": version.business_rules,
        "output_format": version.output_format,
        "few_shot_examples": version.few_shot_examples,
        "model_tier": version.model_tier,
        "max_tokens": version.max_tokens,
        "cache_ttl": version.cache_ttl,
        "change_note": version.change_note,
        "reference_documents-TOTAL_FORMS": len(documents),
        "reference_documents-INITIAL_FORMS": len(documents),
        "reference_documents-MIN_NUM_FORMS": 0,
        "reference_documents-MAX_NUM_FORMS": 1000,
    }
    for i, doc in enumerate(documents):
        data.update(
            {
                f"reference_documents-{i}-id": doc.pk,
                f"reference_documents-{i}-version": version.pk,
                f"reference_documents-{i}-position": doc.position,
                f"reference_documents-{i}-title": doc.title,
                f"reference_documents-{i}-body": doc.body,
            }
        )
    data.update(overrides)
    return data


def test_changelist_shows_status_share_and_key_metrics(admin_client_, seeded):
    now = timezone.now()
    common = {
        "task_type": "chat",
        "prompt_slug": "support-assistant",
        "prompt_version": "1.0.0",
        "prompt_version_id": seeded.pk,
        "model": "claude-sonnet-4-6",
        "latency_ms": 100,
    }
    LLMCall.objects.create(**common, input_tokens=100, cache_read_input_tokens=300, cost_usd=Decimal("0.002"))
    LLMCall.objects.create(
        **common, input_tokens=100, cache_creation_input_tokens=300, status="error", cost_usd=Decimal("0.004")
    )
    old = LLMCall.objects.create(**common, input_tokens=5, cost_usd=Decimal(1))
    LLMCall.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=8))  # outside the 7-day window

    response = admin_client_.get(url("changelist"))
    assert response.status_code == 200
    row = next(
        line for line in response.content.decode().split("<tr") if "1.0.0" in line and "support-assistant" in line
    )
    assert "Active" in row and "100%" in row  # status and traffic share
    assert ">2<" in row  # calls in the last 7 days
    assert "50.0%" in row  # error rate
    assert "$0.00300" in row  # cost per call: (0.002 + 0.004) / 2
    assert "38%" in row  # cache hit rate: 300 read / 800 input tokens
    assert reverse("admin:insights_metrics_changelist") in row


def test_published_change_page_is_read_only_and_offers_a_new_draft(admin_client_, seeded):
    response = admin_client_.get(url("change", seeded.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert "immutable" in body and url("new_draft", seeded.pk) in body
    assert 'name="persona"' not in body  # no editable widget

    assert admin_client_.post(url("change", seeded.pk), form_data(seeded, persona="x")).status_code == 403
    assert PromptVersion.objects.get(pk=seeded.pk).persona == seeded.persona


def test_new_draft_page_suggests_bumps_and_creates_the_draft(admin_client_, seeded, admin_user):
    page = admin_client_.get(url("new_draft", seeded.pk))
    assert page.status_code == 200
    body = page.content.decode()
    assert "2.0.0" in body and "1.1.0" in body and "1.0.1" in body

    response = admin_client_.post(url("new_draft", seeded.pk), {"bump": "patch", "change_note": "typo"})
    draft = PromptVersion.objects.get(prompt=seeded.prompt, status=Status.DRAFT)
    assert response.status_code == 302 and response["Location"] == url("change", draft.pk)
    assert (draft.version, draft.change_note, draft.created_by) == ("1.0.1", "typo", admin_user)
    assert draft.reference_documents.count() == seeded.reference_documents.count()


def test_editing_a_draft_through_the_form_is_audited(admin_client_, seeded, admin_user):
    draft = draft_from(seeded)
    assert admin_client_.get(url("change", draft.pk)).status_code == 200
    response = admin_client_.post(url("change", draft.pk), form_data(draft, persona="You are Ava, now shorter."))
    assert response.status_code == 302, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert draft.persona == "You are Ava, now shorter."
    entry = PromptAuditLog.objects.filter(version=draft, action="draft_edited").get()
    assert entry.actor == admin_user and entry.detail == {"changed": ["persona"]}


def test_adding_a_version_numbers_it_automatically(admin_client_, seeded):
    data = form_data(
        seeded,
        prompt=seeded.prompt.pk,
        major="",
        minor="",
        patch="",
        **{
            "reference_documents-TOTAL_FORMS": 1,
            "reference_documents-INITIAL_FORMS": 0,
            "reference_documents-0-position": 0,
            "reference_documents-0-title": "Only doc",
            "reference_documents-0-body": "Body",
        },
    )
    for key in [k for k in data if k.startswith("reference_documents-0-") and k.endswith(("-id", "-version"))]:
        del data[key]
    response = admin_client_.post(url("add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    created = PromptVersion.objects.get(prompt=seeded.prompt, status=Status.DRAFT)
    assert created.version == "1.1.0"
    assert created.reference_document_pairs() == (("Only doc", "Body"),)
    assert PromptAuditLog.objects.filter(version=created, action="draft_created").exists()


def test_publish_confirmation_then_publish(admin_client_, seeded, admin_user):
    draft = draft_from(seeded, persona="Ava v2")
    page = admin_client_.get(url("publish", draft.pk))
    assert page.status_code == 200
    assert "Exclusive" in page.content.decode() and PromptVersion.objects.get(pk=draft.pk).status == Status.DRAFT

    response = admin_client_.post(url("publish", draft.pk), {"mode": "ab", "weight": "25"})
    assert response.status_code == 302
    draft.refresh_from_db()
    seeded.refresh_from_db()
    assert (draft.status, draft.weight, seeded.status) == (Status.ACTIVE, 25, Status.ACTIVE)
    entry = PromptAuditLog.objects.get(version=draft, action="published")
    assert entry.actor == admin_user and entry.detail["exclusive"] is False


def test_retire_and_rollback_pages(admin_client_, seeded):
    draft = draft_from(seeded)
    services.prompt_version_publish(version=draft, actor=None, weight=50, exclusive=False)

    assert admin_client_.get(url("retire", draft.pk)).status_code == 200
    assert admin_client_.post(url("retire", draft.pk)).status_code == 302
    assert PromptVersion.objects.get(pk=draft.pk).status == Status.RETIRED

    # Retiring the last serving version is refused on the page, with the reason.
    refused = admin_client_.post(url("retire", seeded.pk))
    assert refused.status_code == 200 and "publish or roll back to another version first" in refused.content.decode()

    assert admin_client_.get(url("rollback", draft.pk)).status_code == 200
    assert admin_client_.post(url("rollback", draft.pk)).status_code == 302
    assert PromptVersion.objects.get(pk=draft.pk).status == Status.ACTIVE
    assert PromptVersion.objects.get(pk=seeded.pk).status == Status.RETIRED
    assert PromptAuditLog.objects.filter(action="rolled_back", version=draft).count() == 1


def test_weight_page(admin_client_, seeded):
    draft = draft_from(seeded)
    services.prompt_version_publish(version=draft, actor=None, weight=50, exclusive=False)
    assert admin_client_.get(url("weight", draft.pk)).status_code == 200
    admin_client_.post(url("weight", draft.pk), {"weight": "10"})
    assert PromptVersion.objects.get(pk=draft.pk).weight == 10


def test_diff_page(admin_client_, seeded):
    draft = draft_from(seeded, output_format="Return JSON.")
    response = admin_client_.get(url("diff") + f"?a={seeded.pk}&b={draft.pk}")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="diff"' in body and "Suggested bump for this change: <strong>major</strong>" in body
    assert admin_client_.get(url("diff") + "?a=x&b=1").status_code == 404


def test_changelist_compare_action_redirects_to_the_diff(admin_client_, seeded):
    draft = draft_from(seeded)
    response = admin_client_.post(
        url("changelist"), {"action": "compare_selected", "_selected_action": [seeded.pk, draft.pk]}
    )
    assert response.status_code == 302 and response["Location"] == url("diff") + f"?a={seeded.pk}&b={draft.pk}"


def test_audit_log_admin_is_read_only(admin_client_, seeded):
    response = admin_client_.get(reverse("admin:prompts_promptauditlog_changelist"))
    assert response.status_code == 200 and "published" in response.content.decode()
    assert admin_client_.get(reverse("admin:prompts_promptauditlog_add")).status_code == 403


def test_staff_without_permissions_get_403(client, seeded):
    draft = draft_from(seeded)
    client.force_login(staff_with("view_promptversion"))
    for page in ("publish", "rollback", "retire", "weight", "new_draft"):
        assert client.get(url(page, draft.pk)).status_code == 403, page
        assert client.post(url(page, draft.pk)).status_code == 403, page
    assert client.post(url("change", draft.pk), form_data(draft, persona="x")).status_code == 403
    assert PromptVersion.objects.get(pk=draft.pk).status == Status.DRAFT

    client.force_login(StaffFactory())  # no permission at all
    assert client.get(url("change", draft.pk)).status_code == 403
    assert client.get(url("diff") + f"?a={seeded.pk}&b={draft.pk}").status_code == 403
    assert client.get(url("preview", draft.pk)).status_code == 403


def test_editors_can_edit_drafts_but_only_publishers_publish(client, seeded):
    draft = draft_from(seeded)
    client.force_login(
        staff_with(
            "view_promptversion",
            "change_promptversion",
            "add_promptversion",
            "add_referencedocument",
            "change_referencedocument",
            "delete_referencedocument",
            "view_referencedocument",
        )
    )
    assert client.post(url("change", draft.pk), form_data(draft, persona="edited")).status_code == 302
    assert client.post(url("publish", draft.pk)).status_code == 403

    client.force_login(staff_with("view_promptversion", "change_promptversion", "publish_promptversion"))
    assert client.post(url("publish", draft.pk), {"mode": "exclusive", "weight": "100"}).status_code == 302
    assert PromptVersion.objects.get(pk=draft.pk).status == Status.ACTIVE
