"""Writes to prompts: drafting, publishing, rolling back, retiring and re-weighting versions.

Every status change runs in a transaction holding a row lock on the `Prompt`, so two staff members
publishing versions of the same prompt at the same moment are serialised: the second sees the first's
result instead of both "exclusive" publishes leaving two active versions. Every status change writes a
`PromptAuditLog` row in the same transaction.

Conversations are unaffected by any of this: each stores the version it was assigned when it started
(sticky A/B), so a publish or rollback changes only which version *new* conversations get.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.prompts.gates import publish_blockers
from apps.prompts.models import (
    CONTENT_FIELDS,
    SUPPORT_ASSISTANT,
    TRANSCRIPT_CLASSIFIER,
    Prompt,
    PromptAuditLog,
    PromptVersion,
    ReferenceDocument,
)

Bump = Literal["major", "minor", "patch"]
BUMPS: tuple[Bump, ...] = ("major", "minor", "patch")
DEFAULT_PUBLISH_WEIGHT = 100

Status = PromptVersion.Status
Action = PromptAuditLog.Action


def bump_semver(semver: tuple[int, int, int], bump: Bump) -> tuple[int, int, int]:
    """The next semantic version: major resets minor and patch, minor resets patch."""
    major, minor, patch = semver
    if bump == "major":
        return (major + 1, 0, 0)
    if bump == "minor":
        return (major, minor + 1, 0)
    if bump == "patch":
        return (major, minor, patch + 1)
    raise ApplicationError(f"Unknown version bump {bump!r}; use major, minor or patch.", code="invalid_bump")


def next_free_semver(*, prompt: Prompt, base: tuple[int, int, int], bump: Bump) -> tuple[int, int, int]:
    """`base` bumped, then bumped again while that number is taken (1.0.0 +minor with 1.1.0 taken → 1.2.0)."""
    taken = set(PromptVersion.objects.filter(prompt=prompt).values_list("major", "minor", "patch"))
    candidate = bump_semver(base, bump)
    while candidate in taken:
        candidate = bump_semver(candidate, bump)
    return candidate


def _audit(
    *,
    version: PromptVersion,
    actor: AbstractBaseUser | None,
    action: str,
    from_status: str = "",
    to_status: str = "",
    detail: dict[str, Any] | None = None,
) -> PromptAuditLog:
    return PromptAuditLog.objects.create(
        version=version,
        prompt_slug=version.prompt.slug,
        version_label=version.version,
        actor=_user_or_none(actor),
        action=action,
        from_status=from_status,
        to_status=to_status,
        detail=detail or {},
    )


def _user_or_none(actor: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return actor if actor is not None and actor.is_authenticated else None


def _locked_prompt(prompt_id: int) -> Prompt:
    # Lock order everywhere: the Prompt row first, then its versions. One lock per prompt keeps
    # publishes of different prompts independent.
    return Prompt.objects.select_for_update().get(pk=prompt_id)


def _locked_version(version: PromptVersion) -> PromptVersion:
    """Lock the prompt, then re-read the version under the lock (the caller's copy may be stale)."""
    prompt = _locked_prompt(version.prompt_id)
    locked = PromptVersion.objects.select_for_update().get(pk=version.pk)
    locked.prompt = prompt
    return locked


def _set_reference_documents(version: PromptVersion, documents: Iterable[tuple[str, str]]) -> None:
    version.reference_documents.all().delete()
    ReferenceDocument.objects.bulk_create(
        ReferenceDocument(version=version, position=index, title=title, body=body)
        for index, (title, body) in enumerate(documents)
    )


def _check_parts(parts: dict[str, Any]) -> None:
    unknown = set(parts) - set(CONTENT_FIELDS) - {"reference_documents", "change_note"}
    if unknown:
        raise ApplicationError(f"Unknown prompt parts: {', '.join(sorted(unknown))}.", code="invalid_parts")


@transaction.atomic
def prompt_version_create_draft(
    *,
    prompt: Prompt,
    based_on: PromptVersion | None = None,
    bump: Bump = "minor",
    actor: AbstractBaseUser | None,
    **parts: Any,
) -> PromptVersion:
    """Create a draft of `prompt`, copying `based_on` (if given) and overriding it with `parts`.

    `parts` are content fields (persona, business_rules, output_format, few_shot_examples, model_tier,
    max_tokens), `reference_documents` as an iterable of (title, body), and `change_note`.
    The number is `based_on` (else the highest existing version, else 0.0.0) bumped by `bump`, skipping
    numbers already taken. The first version of a prompt is 1.0.0 whatever the bump.

    Raises ApplicationError("invalid_parts" | "invalid_bump" | "invalid_base").
    """
    _check_parts(parts)
    if bump not in BUMPS:
        raise ApplicationError(f"Unknown version bump {bump!r}; use major, minor or patch.", code="invalid_bump")
    if based_on is not None and based_on.prompt_id != prompt.pk:
        raise ApplicationError("The base version belongs to another prompt.", code="invalid_base")
    _locked_prompt(prompt.pk)  # serialise numbering with concurrent drafts

    latest = PromptVersion.objects.filter(prompt=prompt).order_by("-major", "-minor", "-patch").first()
    if based_on is None and latest is None:
        semver = (1, 0, 0)
    else:
        base = based_on.semver if based_on is not None else latest.semver
        semver = next_free_semver(prompt=prompt, base=base, bump=bump)

    content: dict[str, Any] = {}
    documents: tuple[tuple[str, str], ...] = ()
    if based_on is not None:
        content = {field: getattr(based_on, field) for field in CONTENT_FIELDS}
        documents = based_on.reference_document_pairs()
    content.update({k: v for k, v in parts.items() if k in CONTENT_FIELDS})
    if "reference_documents" in parts:
        documents = tuple((str(t), str(b)) for t, b in parts["reference_documents"])

    version = PromptVersion(
        prompt=prompt,
        major=semver[0],
        minor=semver[1],
        patch=semver[2],
        status=Status.DRAFT,
        weight=0,
        based_on=based_on,
        change_note=parts.get("change_note", ""),
        created_by=_user_or_none(actor),
        updated_by=_user_or_none(actor),
        **content,
    )
    version.full_clean(exclude=["prompt", "based_on", "created_by", "updated_by"])
    version.save()
    _set_reference_documents(version, documents)
    _audit(
        version=version,
        actor=actor,
        action=Action.DRAFT_CREATED,
        to_status=Status.DRAFT,
        detail={"based_on": based_on.version if based_on else None, "bump": bump},
    )
    return version


@transaction.atomic
def prompt_version_update_draft(
    *, version: PromptVersion, actor: AbstractBaseUser | None, **parts: Any
) -> PromptVersion:
    """Change the content of a draft. Published (active or retired) versions never change.

    Raises ApplicationError("prompt_version_immutable" | "invalid_parts").
    """
    _check_parts(parts)
    locked = _locked_version(version)
    if locked.status != Status.DRAFT:
        raise ApplicationError(
            f"{locked} is {locked.status} and immutable; create a new draft from it instead.",
            code="prompt_version_immutable",
        )
    changed = [f for f in CONTENT_FIELDS if f in parts and getattr(locked, f) != parts[f]]
    for field in CONTENT_FIELDS:
        if field in parts:
            setattr(locked, field, parts[field])
    if "change_note" in parts:
        locked.change_note = parts["change_note"]
    if "reference_documents" in parts:
        documents = tuple((str(t), str(b)) for t, b in parts["reference_documents"])
        if documents != locked.reference_document_pairs():
            changed.append("reference_documents")
        _set_reference_documents(locked, documents)
    locked.updated_by = _user_or_none(actor)
    locked.full_clean(exclude=["prompt", "based_on", "created_by", "updated_by", "published_by"])
    locked.save()
    _audit(
        version=locked,
        actor=actor,
        action=Action.DRAFT_EDITED,
        from_status=Status.DRAFT,
        to_status=Status.DRAFT,
        detail={"changed": changed},
    )
    return locked


@transaction.atomic
def prompt_version_save_draft_form(*, version: PromptVersion, actor: AbstractBaseUser | None) -> PromptVersion:
    """Persist a draft edited through the admin form (new or existing); numbers a new one left blank.

    The admin's ModelForm has already validated the fields; this re-checks the status under the
    prompt lock (someone may have published the draft since the form was opened) and records who
    changed it. The admin audits with `prompt_version_audit_form_save` once the inline reference
    documents are saved too (the admin wraps both in one transaction).
    Raises ApplicationError("prompt_version_immutable" | "version_taken").
    """
    _locked_prompt(version.prompt_id)
    if version.pk is not None:
        status = PromptVersion.objects.filter(pk=version.pk).values_list("status", flat=True).get()
        if status != Status.DRAFT:
            raise ApplicationError(
                f"{version} is {status} and immutable; create a new draft from it instead.",
                code="prompt_version_immutable",
            )
    else:
        if version.major is None or version.minor is None or version.patch is None:
            latest = (
                PromptVersion.objects.filter(prompt_id=version.prompt_id).order_by("-major", "-minor", "-patch").first()
            )
            semver = (
                (1, 0, 0)
                if latest is None
                else next_free_semver(prompt=version.prompt, base=latest.semver, bump="minor")
            )
            version.major, version.minor, version.patch = semver
        version.created_by = _user_or_none(actor)
    version.status = Status.DRAFT
    version.weight = 0
    version.updated_by = _user_or_none(actor)
    try:
        with transaction.atomic():
            version.save()
    except IntegrityError as exc:
        raise ApplicationError(
            f"{version.prompt.slug} {version.version} already exists.", code="version_taken"
        ) from exc
    return version


def prompt_version_audit_form_save(
    *, version: PromptVersion, actor: AbstractBaseUser | None, created: bool, changed: Iterable[str]
) -> PromptAuditLog:
    """Audit a draft saved through the admin form: which parts changed, by whom."""
    return _audit(
        version=version,
        actor=actor,
        action=Action.DRAFT_CREATED if created else Action.DRAFT_EDITED,
        from_status="" if created else Status.DRAFT,
        to_status=Status.DRAFT,
        detail={"changed": sorted(set(changed))},
    )


def _retire_others(*, prompt: Prompt, keep: PromptVersion, actor: AbstractBaseUser | None, reason: str) -> list[str]:
    retired: list[str] = []
    now = timezone.now()
    for other in (
        PromptVersion.objects.select_for_update().filter(prompt=prompt, status=Status.ACTIVE).exclude(pk=keep.pk)
    ):
        other.status = Status.RETIRED
        other.weight = 0
        other.retired_at = now
        other.save(update_fields=["status", "weight", "retired_at", "updated_at"])
        _audit(
            version=other,
            actor=actor,
            action=Action.RETIRED,
            from_status=Status.ACTIVE,
            to_status=Status.RETIRED,
            detail={"reason": reason, "replaced_by": keep.version},
        )
        retired.append(other.version)
    return retired


@transaction.atomic
def prompt_version_publish(
    *,
    version: PromptVersion,
    actor: AbstractBaseUser | None,
    weight: int = DEFAULT_PUBLISH_WEIGHT,
    exclusive: bool = True,
    override_reason: str = "",
) -> PromptVersion:
    """Make a draft active. New conversations may get it from now on; running ones keep theirs.

    `exclusive=True` retires every other active version (all new traffic goes here);
    `exclusive=False` adds it to the A/B rollout next to the active versions with `weight`.
    The publish gate (apps.prompts.gates: e.g. no evaluation run, or one scoring below live) blocks it
    unless `override_reason` says why it ships anyway; the reason and the blockers go in the audit log.
    Raises ApplicationError("invalid_transition" | "invalid_weight" | "publish_blocked").
    """
    if weight < 1:
        raise ApplicationError("A published version needs a traffic weight of at least 1.", code="invalid_weight")
    locked = _locked_version(version)
    if locked.status != Status.DRAFT:
        raise ApplicationError(
            f"Only drafts can be published; {locked} is {locked.status}. "
            "Use roll back to reactivate a retired version.",
            code="invalid_transition",
        )
    # System actions (seeding, migrations: no actor) are not gated; people are.
    blockers = publish_blockers(locked) if _user_or_none(actor) is not None else []
    override_reason = override_reason.strip()
    if blockers and not override_reason:
        raise ApplicationError(
            f"{locked} cannot be published yet: {'; '.join(blockers)}. Give an override reason to publish it anyway.",
            code="publish_blocked",
            extra={"blockers": blockers},
        )
    retired = (
        _retire_others(prompt=locked.prompt, keep=locked, actor=actor, reason="exclusive publish") if exclusive else []
    )
    locked.status = Status.ACTIVE
    locked.weight = weight
    locked.published_at = timezone.now()
    locked.published_by = _user_or_none(actor)
    locked.save(update_fields=["status", "weight", "published_at", "published_by", "updated_at"])
    _audit(
        version=locked,
        actor=actor,
        action=Action.PUBLISHED,
        from_status=Status.DRAFT,
        to_status=Status.ACTIVE,
        detail={
            "weight": weight,
            "exclusive": exclusive,
            "retired": retired,
            **({"gate_blockers": blockers, "override_reason": override_reason} if blockers else {}),
        },
    )
    return locked


@transaction.atomic
def prompt_version_rollback(*, to_version: PromptVersion, actor: AbstractBaseUser | None) -> PromptVersion:
    """Make a previously published version the only active one (weight 100); retire all others.

    The version's content is unchanged (published versions are immutable), so the rollback restores
    exactly what was live before. Raises ApplicationError("invalid_transition") for drafts.
    """
    locked = _locked_version(to_version)
    if locked.status == Status.DRAFT:
        raise ApplicationError(
            f"{locked} was never published; publish it instead of rolling back to it.", code="invalid_transition"
        )
    from_status = locked.status
    retired = _retire_others(prompt=locked.prompt, keep=locked, actor=actor, reason=f"rollback to {locked.version}")
    locked.status = Status.ACTIVE
    locked.weight = DEFAULT_PUBLISH_WEIGHT
    locked.save(update_fields=["status", "weight", "updated_at"])
    _audit(
        version=locked,
        actor=actor,
        action=Action.ROLLED_BACK,
        from_status=from_status,
        to_status=Status.ACTIVE,
        detail={"retired": retired, "weight": DEFAULT_PUBLISH_WEIGHT},
    )
    return locked


def _active_weight_total(prompt: Prompt, *, excluding: PromptVersion) -> int:
    weights = PromptVersion.objects.filter(prompt=prompt, status=Status.ACTIVE).exclude(pk=excluding.pk)
    return sum(weights.values_list("weight", flat=True))


@transaction.atomic
def prompt_version_retire(*, version: PromptVersion, actor: AbstractBaseUser | None) -> PromptVersion:
    """Take an active version out of rotation. Conversations already on it continue with it.

    Refuses to retire the last version carrying traffic, which would leave the prompt with no active
    version and make every new conversation fail: publish or roll back to a replacement first.
    Raises ApplicationError("invalid_transition" | "last_active_version").
    """
    locked = _locked_version(version)
    if locked.status != Status.ACTIVE:
        raise ApplicationError(
            f"Only active versions can be retired; {locked} is {locked.status}.", code="invalid_transition"
        )
    if _active_weight_total(locked.prompt, excluding=locked) < 1:
        raise ApplicationError(
            f"{locked} is the only version serving {locked.prompt.slug}; "
            "publish or roll back to another version first.",
            code="last_active_version",
        )
    old_weight = locked.weight
    locked.status = Status.RETIRED
    locked.weight = 0
    locked.retired_at = timezone.now()
    locked.save(update_fields=["status", "weight", "retired_at", "updated_at"])
    _audit(
        version=locked,
        actor=actor,
        action=Action.RETIRED,
        from_status=Status.ACTIVE,
        to_status=Status.RETIRED,
        detail={"weight": old_weight},
    )
    return locked


@transaction.atomic
def prompt_version_set_weight(*, version: PromptVersion, weight: int, actor: AbstractBaseUser | None) -> PromptVersion:
    """Change an active version's share of new conversations (share = weight / sum of active weights).

    Weight 0 pauses a version without retiring it, as long as another active version still has
    traffic. Raises ApplicationError("invalid_transition" | "invalid_weight" | "last_active_version").
    """
    if weight < 0:
        raise ApplicationError("Weights are whole numbers ≥ 0.", code="invalid_weight")
    locked = _locked_version(version)
    if locked.status != Status.ACTIVE:
        raise ApplicationError(
            f"Only active versions carry traffic; {locked} is {locked.status}.", code="invalid_transition"
        )
    if weight == 0 and _active_weight_total(locked.prompt, excluding=locked) < 1:
        raise ApplicationError(
            f"{locked} is the only version serving {locked.prompt.slug}; its weight cannot be 0.",
            code="last_active_version",
        )
    old_weight = locked.weight
    locked.weight = weight
    locked.save(update_fields=["weight", "updated_at"])
    _audit(
        version=locked,
        actor=actor,
        action=Action.WEIGHT_CHANGED,
        from_status=Status.ACTIVE,
        to_status=Status.ACTIVE,
        detail={"from": old_weight, "to": weight},
    )
    return locked


# --- Seeding ---------------------------------------------------------------------------------------

SEED_PROMPTS: dict[str, dict[str, Any]] = {
    SUPPORT_ASSISTANT: {
        "name": "Support assistant (Ava)",
        "description": "Answers Acme customers in the chat widget; one conversation = one sticky version.",
        "files": ("persona.txt", "business_rules.txt", "output_format.txt", "few_shot.txt"),
        "reference_documents": True,
        "model_tier": "",  # route by the customer's plan
        "max_tokens": 1024,
    },
    TRANSCRIPT_CLASSIFIER: {
        "name": "Transcript classifier",
        "description": "Nightly batch classification of finished conversations (category, resolved, sentiment).",
        "files": (
            "classifier_persona.txt",
            "classifier_rules.txt",
            "classifier_output_format.txt",
            "classifier_few_shot.txt",
        ),
        "reference_documents": False,
        "model_tier": "haiku",
        "max_tokens": 400,
    },
}


@transaction.atomic
def prompt_seed_defaults(*, actor: AbstractBaseUser | None = None) -> list[PromptVersion]:
    """Create `support-assistant` and `transcript-classifier` 1.0.0, active, from the demo content.

    Idempotent: a prompt that already has any version is left alone (an admin may have moved on to
    2.x). Returns the versions created by this call.
    """
    from apps.accounts import demo_content  # the demo texts live with the demo accounts

    created: list[PromptVersion] = []
    for slug, spec in SEED_PROMPTS.items():
        prompt, _ = Prompt.objects.get_or_create(
            slug=slug, defaults={"name": spec["name"], "description": spec["description"]}
        )
        if PromptVersion.objects.filter(prompt=prompt).exists():
            continue
        persona, rules, output_format, few_shot = (demo_content.load_text(name) for name in spec["files"])
        documents = demo_content.knowledge_base_documents() if spec["reference_documents"] else []
        draft = prompt_version_create_draft(
            prompt=prompt,
            actor=actor,
            persona=persona,
            business_rules=rules,
            output_format=output_format,
            few_shot_examples=few_shot,
            reference_documents=documents,
            model_tier=spec["model_tier"],
            max_tokens=spec["max_tokens"],
            change_note="Initial version from the demo content.",
        )
        created.append(prompt_version_publish(version=draft, actor=actor))
    return created


@transaction.atomic
def prompt_version_seed_tools(
    *, slug: str, tool_names: Iterable[str], actor: AbstractBaseUser | None = None
) -> PromptVersion | None:
    """Publish a version of `slug` that may call `tool_names`, copied from its active version, as the only
    active one (the demo's assistant acts, not only explains).

    Idempotent: returns None when an active version already has these tools, or the prompt has no
    active version to copy.
    """
    names = sorted(set(tool_names))
    prompt = Prompt.objects.filter(slug=slug).first()
    if prompt is None:
        return None
    active = list(PromptVersion.objects.filter(prompt=prompt, status=Status.ACTIVE).order_by("-id"))
    if not active or any(sorted(version.tools or []) == names for version in active):
        return None
    draft = prompt_version_create_draft(
        prompt=prompt, based_on=active[0], actor=actor, tools=names, change_note="The demo tools (docs/actions.md)."
    )
    return prompt_version_publish(version=draft, actor=actor)
