"""A widget visitor on another site reaches a person: two browser contexts, the visitor on the host page
of a second origin (tests/e2e/test_widget.py) and Dana at /inbox/. The visitor chooses "Talk to a
person", Dana sees it live, claims and replies, the visitor sees the reply live in the widget and
answers, Dana hands back and the assistant answers the next question. With nobody online, a visitor
who asks for a human mid-chat is told so (in German here) and leaves an email for the reply."""

import pytest

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Message
from apps.widget.models import Visitor
from tests.e2e.conftest import off_loop
from tests.e2e.test_inbox import log_in, people  # noqa: F401 (a fixture)
from tests.e2e.test_widget import ANSWER, ask, host, open_chat, site  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_visitor_talks_to_an_agent_in_the_widget_and_is_handed_back(
    people,  # noqa: F811
    site,  # noqa: F811
    host,  # noqa: F811
    asgi_server,
    browser_page,
):
    dana_page = browser_page
    visitor_context = dana_page.context.browser.new_context()
    visitor_context.set_default_timeout(15_000)
    page = visitor_context.new_page()
    log_in(dana_page, asgi_server, "/inbox/", "dana")
    dana_page.wait_for_selector('#inbox-conn[data-state="open"]')

    page.goto(f"http://localhost:{host.port}" + host.page("/pricing", f"{asgi_server}/widget/{site.key}.js"))
    frame = open_chat(page)
    choice = frame.get_by_role("group", name="Who would you like to answer you?")
    choice.wait_for()
    # Keyboard only: from the message box back to "Talk to a person", Enter picks it.
    frame.get_by_role("button", name="Talk to a person").focus()
    page.keyboard.press("Enter")
    assert choice.is_hidden()
    frame.get_by_text("Your message will go to a person from our team.").wait_for()
    ask(frame, "Can I move my order to another address?")
    frame.get_by_text("A person from our team will join shortly.").wait_for()  # Dana is online
    frame.locator("#w-send:not([disabled])").wait_for()  # no assistant answer to wait for

    item = dana_page.locator(".queue-item", has_text="Can I move my order to another address?")
    item.wait_for()
    assert "Visitor on Globex Help" in item.text_content() and "no email left" in item.text_content()
    item.locator("a").click()
    dana_page.get_by_role("button", name="Claim").click()
    frame.get_by_text("Dana from Acme joined.").wait_for()

    dana_page.get_by_placeholder("Reply to the customer").fill("Yes: which address should it go to?")
    dana_page.get_by_role("button", name="Send to customer").click()
    reply = frame.locator("li.p", has_text="which address should it go to?")
    reply.wait_for()
    assert reply.locator(".who").text_content() == "Dana"
    ask(frame, "To 12 Main Street, please")
    dana_page.wait_for_selector("#timeline .msg-user:has-text('To 12 Main Street')")

    dana_page.get_by_role("button", name="Hand back to the assistant").click()
    frame.get_by_text("You're back with the assistant.").wait_for()
    assert frame.get_by_role("button", name="Talk to a human").is_visible()
    ask(frame, "Do you offer a free trial?")
    frame.locator(ANSWER).wait_for()
    assert frame.locator("li.a").count() == 1  # the assistant answered only after the hand back
    roles = off_loop(lambda: list(Message.objects.order_by("id").values_list("role", flat=True)))
    assert roles == ["user", "agent", "user", "user", "assistant"]
    assert off_loop(lambda: Conversation.objects.get().handoff_reason) == ""  # handed back
    visitor_context.close()


def test_with_nobody_online_a_visitor_leaves_an_email_for_the_reply(
    site,  # noqa: F811
    host,  # noqa: F811
    asgi_server,
    browser_page,
):
    context = browser_page.context.browser.new_context(locale="de-DE")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"http://localhost:{host.port}" + host.page("/kontakt", f"{asgi_server}/widget/{site.key}.js"))
    page.get_by_role("button", name="Chatten Sie mit uns").click()
    frame = page.frame_locator("iframe[title='Globex Help']")
    frame.locator("#w-state", has_text="Online").wait_for()
    frame.get_by_label("Ihre Nachricht", exact=True).fill("Meine Rechnung ist falsch")
    frame.get_by_label("Ihre Nachricht", exact=True).press("Enter")
    frame.locator(ANSWER).wait_for()
    frame.get_by_role("button", name="Mit einem Menschen sprechen").click()
    frame.get_by_text("Gerade ist niemand aus unserem Team online.").wait_for()
    assert frame.get_by_role("button", name="Mit einem Menschen sprechen").is_hidden()
    frame.get_by_label("E-Mail für eine Antwort (optional)").fill("kunde@example.de")
    assert frame.get_by_label("Ihre Nachricht an unser Team").is_hidden()  # the request is the chat itself
    frame.get_by_role("button", name="E-Mail senden").click()
    frame.get_by_text("Danke! Wir antworten Ihnen hier und per E-Mail.").wait_for()
    context.close()
    assert off_loop(lambda: Visitor.objects.get().email) == "kunde@example.de"
    ticket = off_loop(lambda: SupportTicket.objects.get())
    assert "Reply to: kunde@example.de" in ticket.body and "Meine Rechnung ist falsch" in ticket.body
    assert off_loop(lambda: Conversation.objects.get().status) == "needs_human"


def test_when_the_assistant_cannot_answer_the_visitor_is_told_a_person_follows_up(
    site,  # noqa: F811
    host,  # noqa: F811
    llm_upstream,
    asgi_server,
    browser_page,
    settings,
):
    from tests.conftest import set_faults

    settings.LLM_RETRY_BUDGET_SECONDS = 1
    page = browser_page
    page.goto(f"http://localhost:{host.port}" + host.page("/down", f"{asgi_server}/widget/{site.key}.js"))
    frame = open_chat(page)
    frame.locator("#w-state", has_text="Online").wait_for()
    set_faults(llm_upstream, {"error_rates": {"529": 1.0}})
    ask(frame, "Do you ship to Canada?")
    frame.locator("li.a[data-status=degraded]").wait_for(timeout=30_000)
    frame.get_by_text("A person from our team will follow up here.").wait_for()
    frame.get_by_label("Email for a reply (optional)").fill("someone@example.org")
    frame.get_by_role("button", name="Send my email").click()
    frame.get_by_text("Thanks! We will answer you here and by email.").wait_for()
    assert off_loop(lambda: Conversation.objects.get().status) == "needs_human"  # in the agents' queue
    # The degraded answer's ticket gets the address: no second ticket for it.
    ticket = off_loop(lambda: SupportTicket.objects.get())
    assert ticket.source == "degraded" and "Reply to: someone@example.org" in ticket.body


def test_outside_business_hours_a_french_visitor_is_told_when_the_team_is_back(
    site,  # noqa: F811
    host,  # noqa: F811
    asgi_server,
    browser_page,
):
    import datetime as dt
    import zoneinfo

    from django.utils import timezone

    from apps.staffing.models import Holiday, OpeningHours, SupportSchedule

    def closed_today() -> None:
        schedule = SupportSchedule.objects.create(time_zone="UTC")
        for day in range(7):
            OpeningHours.objects.create(schedule=schedule, weekday=day, opens=dt.time(9), closes=dt.time(17))
        Holiday.objects.create(schedule=schedule, date=timezone.now().date(), name="Journée d'équipe")

    off_loop(closed_today)
    context = browser_page.context.browser.new_context(locale="fr-FR", timezone_id="Europe/Paris")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"http://localhost:{host.port}" + host.page("/contact", f"{asgi_server}/widget/{site.key}.js"))
    page.get_by_role("button", name="Discuter avec nous").click()
    frame = page.frame_locator("iframe[title='Globex Help']")
    frame.get_by_role("button", name="Parler à une personne").click()
    frame.get_by_label("Votre message", exact=True).fill("Ma facture est fausse")
    frame.get_by_label("Votre message", exact=True).press("Enter")
    # Tomorrow 09:00 UTC, in the visitor's own time zone (10:00 in Paris in winter).
    back = dt.datetime.combine(timezone.now().date() + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    notice = frame.get_by_text("Notre équipe est absente ; retour")
    notice.wait_for()
    assert back.astimezone(zoneinfo.ZoneInfo("Europe/Paris")).strftime("%H:%M") in notice.text_content()
    assert frame.get_by_label("E-mail pour une réponse (facultatif)").is_visible()
    assert frame.locator("li.a").count() == 0
    context.close()
