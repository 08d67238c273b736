"""`python manage.py seed_demo`: demo users, account data, prompts and a few days of transcripts.

Idempotent: running it again changes nothing that already exists.
"""

from django.core.management.base import BaseCommand

from apps.accounts.demo import DEMO_PASSWORD, demo_accounts_seed, demo_transcripts_seed
from apps.actions.registry import tools
from apps.chat.services import PROMPT_SLUG
from apps.inbox.services import demo_agent_seed
from apps.knowledge.services import demo_articles_seed
from apps.prompts.services import prompt_seed_defaults, prompt_version_seed_tools


class Command(BaseCommand):
    help = (
        "Seed demo data (idempotent): admin, alice/bob/carol with account data, the agent dana, prompts "
        "(the support assistant with the demo tools), sample transcripts."
    )

    def handle(self, *args, **options) -> None:
        accounts = demo_accounts_seed()
        demo_agent_seed(password=DEMO_PASSWORD)
        versions = prompt_seed_defaults()
        # The assistant of the demo acts (resend an invoice, cancel with a confirmation card…): docs/actions.md.
        with_tools = prompt_version_seed_tools(slug=PROMPT_SLUG, tool_names=list(tools()))
        versions += [with_tools] if with_tools is not None else []
        articles = demo_articles_seed()
        conversations = demo_transcripts_seed()
        self.stdout.write(
            f"Demo data ready: {len(accounts)} customers, {len(versions)} new prompt versions, "
            f"{articles} new articles, {conversations} new sample conversations. "
            "Password for admin, alice, bob, carol and the agent dana (at /inbox/): demo-password"
        )
