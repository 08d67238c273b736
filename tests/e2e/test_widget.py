"""The widget on another site, in headless Chromium: a host page served from a second origin (another
host name and port) embeds the script. An anonymous visitor chats and resumes after a reload; a
disallowed origin gets nothing; a correctly signed identity brings that customer's account context to
the model (seen in the emulator's request log), a forged one does not."""

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from apps.accounts.models import SupportTicket
from apps.chat.models import Conversation, Message
from apps.prompts.services import prompt_seed_defaults
from apps.upstream.language import GREETING, LEAD_IN
from apps.widget.models import Visitor
from tests.chat.factories import CustomerAccountFactory
from tests.conftest import received_requests
from tests.e2e.conftest import off_loop
from tests.widget.factories import SiteFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SECRET = "host-secret-e2e"
ANSWER = "li.a[data-status=complete]"


class HostPages:
    """A second web server: the host site's pages, one per path, set by the test."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="e2e-host-site", daemon=True).start()

    def page(self, path: str, script_src: str, *, user_id: str = "", user_hash: str = "") -> str:
        identity = f' data-user-id="{user_id}" data-user-hash="{user_hash}"' if user_id else ""
        self.pages[path] = (
            f"<!doctype html><html lang=en><title>Host</title><h1>Host site</h1>"
            f'<script src="{script_src}" crossorigin="anonymous"{identity} defer></script>'
        )
        return path


@pytest.fixture
def host() -> Iterator[HostPages]:
    pages = HostPages()
    yield pages
    pages.server.shutdown()
    pages.server.server_close()


@pytest.fixture
def site(llm_upstream, transactional_db, host):
    """A site for the host's origin (localhost:<port>; the support server is 127.0.0.1:<other port>)."""
    cache.clear()
    prompt_seed_defaults()
    CustomerAccountFactory(user__username="carol", plan="enterprise", company="Globex")
    return SiteFactory(origin=f"http://localhost:{host.port}", name="Globex Help", colour="#7a1fa2", secret=SECRET)


def open_chat(page):
    page.get_by_role("button", name="Chat with us").click()
    return page.frame_locator("iframe[title='Globex Help']")


def ask(frame, text: str) -> None:
    frame.locator("#w-state", has_text="Online").wait_for()
    frame.get_by_label("Your message", exact=True).fill(text)
    frame.get_by_label("Your message", exact=True).press("Enter")


def last_chat_request_text(upstream) -> str:
    for entry in reversed(received_requests(upstream)):  # newest first
        body = entry.get("body")
        if isinstance(body, dict) and body.get("stream"):
            return str(body.get("messages"))
    raise AssertionError("no chat request reached the emulator")


def test_an_anonymous_visitor_chats_on_another_site_and_resumes_after_a_reload(
    site, host, llm_upstream, asgi_server, browser_page
):
    page = browser_page
    url = f"http://localhost:{host.port}" + host.page("/pricing", f"{asgi_server}/widget/{site.key}.js")
    page.goto(url)
    frame = open_chat(page)
    frame.get_by_role("heading", name="Globex Help").wait_for()
    ask(frame, "Do you offer a free trial?")
    frame.locator(ANSWER).wait_for()
    answer = frame.locator(ANSWER).text_content()
    stored = off_loop(lambda: Message.objects.get(role="assistant"))
    assert answer == stored.text and stored.status == "complete"
    assert off_loop(lambda: stored.conversation.user.widget_visitor.site_id) == site.pk
    assert "account_context" not in last_chat_request_text(llm_upstream)

    page.reload()
    frame = open_chat(page)
    frame.locator(ANSWER).wait_for()  # the transcript is back, from the frame's own storage
    assert frame.locator("li.u").all_text_contents() == ["Do you offer a free trial?"]
    assert frame.locator(ANSWER).text_content() == answer
    assert off_loop(Visitor.objects.count) == 1

    # Keyboard only: Escape inside the frame closes the panel and gives the focus back to the launcher.
    frame.get_by_label("Your message", exact=True).press("Escape")
    launcher = page.get_by_role("button", name="Chat with us")
    page.wait_for_function("() => document.activeElement && document.activeElement.textContent === 'Chat with us'")
    assert launcher.get_attribute("aria-expanded") == "false"


def test_a_disallowed_origin_gets_no_widget_and_cannot_frame_the_chat(
    site, host, llm_upstream, asgi_server, browser_page
):
    other = HostPages()  # another port: another origin
    try:
        other.page("/", f"{asgi_server}/widget/{site.key}.js")
        other.pages["/frame"] = f'<!doctype html><iframe id=f src="{asgi_server}/widget/{site.key}/frame/"></iframe>'
        page = browser_page
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"http://localhost:{other.port}/", wait_until="networkidle")
        assert f"{asgi_server}/widget/{site.key}.js" in requested  # asked for, refused (404, no CORS header)
        assert page.evaluate("() => window.__acmeSupportWidget === undefined")
        assert page.get_by_role("button", name="Chat with us").count() == 0

        page.goto(f"http://localhost:{other.port}/frame", wait_until="networkidle")
        framed = page.frame_locator("#f")
        assert framed.locator("#w-input").count() == 0  # refused by frame-ancestors
    finally:
        other.server.shutdown()


def test_a_signed_identity_gets_its_account_context_and_a_forged_one_does_not(
    site, host, llm_upstream, asgi_server, browser_page
):
    page = browser_page
    script = f"{asgi_server}/widget/{site.key}.js"
    signed = hmac.new(SECRET.encode(), b"carol", hashlib.sha256).hexdigest()
    page.goto(f"http://localhost:{host.port}" + host.page("/account", script, user_id="carol", user_hash=signed))
    frame = open_chat(page)
    ask(frame, "What plan am I on?")
    frame.locator(ANSWER).wait_for()
    sent = last_chat_request_text(llm_upstream)
    assert "account_context" in sent and "carol" in sent and "Globex" in sent and "enterprise" in sent

    forged = hmac.new(b"a guess", b"carol", hashlib.sha256).hexdigest()
    page.goto(f"http://localhost:{host.port}" + host.page("/forged", script, user_id="carol", user_hash=forged))
    frame = open_chat(page)
    frame.get_by_text("We could not confirm your sign-in").wait_for()  # told, until they ask
    ask(frame, "What plan am I on, really?")
    frame.locator(ANSWER).wait_for()
    sent = last_chat_request_text(llm_upstream)
    assert "really" in sent
    assert "account_context" not in sent and "carol" not in sent and "Globex" not in sent
    assert frame.locator("li.u").all_text_contents() == ["What plan am I on, really?"]  # a guest chat of its own

    # Signed correctly again: the customer's own chat is back, nothing lost to the guest one.
    page.goto(f"http://localhost:{host.port}/account")
    frame = open_chat(page)
    frame.locator(ANSWER).wait_for()
    assert frame.locator("li.u").all_text_contents() == ["What plan am I on?"]


def test_in_german_a_visitor_is_answered_in_german_and_leaves_a_message_with_an_email(
    site, host, llm_upstream, asgi_server, browser_page
):
    context = browser_page.context.browser.new_context(locale="de-DE")
    page = context.new_page()
    page.goto(f"http://localhost:{host.port}" + host.page("/kontakt", f"{asgi_server}/widget/{site.key}.js"))
    page.get_by_role("button", name="Chatten Sie mit uns").click()
    frame = page.frame_locator("iframe[title='Globex Help']")
    frame.locator("#w-state", has_text="Online").wait_for()
    frame.get_by_label("Ihre Nachricht", exact=True).fill("Hey")
    frame.get_by_label("Ihre Nachricht", exact=True).press("Enter")
    frame.locator(ANSWER).wait_for()  # in the browser's language, though "Hey" is not German
    assert frame.locator(ANSWER).text_content().startswith((GREETING["de"], LEAD_IN["de"]))
    assert '"language": "de"' in last_chat_request_text(llm_upstream)
    frame.get_by_role("button", name="Oder hinterlassen Sie unserem Team eine Nachricht und Ihre E-Mail").click()
    frame.get_by_label("E-Mail für eine Antwort (optional)").fill("besuch@example.de")
    frame.get_by_label("Ihre Nachricht an unser Team").fill("Bitte rufen Sie mich an.")
    frame.get_by_role("button", name="Nachricht hinterlassen").click()
    frame.get_by_text("Danke! Unser Team meldet sich bei Ihnen.").wait_for()
    context.close()
    ticket = off_loop(lambda: SupportTicket.objects.get())
    assert "Bitte rufen Sie mich an." in ticket.body and "besuch@example.de" in ticket.body
    assert off_loop(lambda: Visitor.objects.get().email) == "besuch@example.de"


def test_a_guest_who_signs_in_on_the_host_site_goes_on_with_the_same_chat(
    site, host, llm_upstream, asgi_server, browser_page
):
    page = browser_page
    script = f"{asgi_server}/widget/{site.key}.js"
    page.goto(f"http://localhost:{host.port}" + host.page("/pricing", script))
    frame = open_chat(page)
    ask(frame, "Do you offer a free trial?")
    frame.locator(ANSWER).wait_for()

    signed = hmac.new(SECRET.encode(), b"carol", hashlib.sha256).hexdigest()
    page.goto(f"http://localhost:{host.port}" + host.page("/account", script, user_id="carol", user_hash=signed))
    frame = open_chat(page)
    frame.locator(ANSWER).wait_for()  # the guest's transcript, now the customer's
    ask(frame, "What plan am I on?")
    frame.locator(ANSWER).nth(1).wait_for()
    assert frame.locator("li.u").all_text_contents() == ["Do you offer a free trial?", "What plan am I on?"]
    assert "account_context" in last_chat_request_text(llm_upstream)
    assert off_loop(lambda: list(Conversation.objects.values_list("user__username", flat=True))) == ["carol"]


def test_an_overload_shows_the_visitor_retrying_then_the_answer(
    site, host, llm_upstream, asgi_server, browser_page, settings
):
    """Issue 14, part 4: within the retry budget the visitor is told the assistant is busy, then answered."""
    from tests.conftest import set_faults

    settings.LLM_RETRY_BUDGET_SECONDS = 15
    settings.LLM_BREAKER_FAILURE_THRESHOLD = 1
    settings.LLM_BREAKER_RESET_SECONDS = 1.5
    page = browser_page
    page.goto(f"http://localhost:{host.port}" + host.page("/busy", f"{asgi_server}/widget/{site.key}.js"))
    frame = open_chat(page)
    frame.locator("#w-state", has_text="Online").wait_for()
    set_faults(llm_upstream, {"force_errors": [{"status": 529, "count": 6}], "retry_after_seconds": 0.1})
    ask(frame, "Do you offer a free trial?")
    frame.get_by_text("The assistant is busy right now. Retrying…").wait_for()
    frame.locator(ANSWER).wait_for(timeout=30_000)
    assert frame.get_by_text("The assistant is busy right now. Retrying…").count() == 0
    assert not off_loop(SupportTicket.objects.exists)


def test_a_visitor_sees_an_agent_join_and_reply_and_can_write_to_them(
    site, host, llm_upstream, asgi_server, browser_page
):
    from apps.chat import handoffs
    from apps.inbox.services import agent_make
    from tests.chat.factories import UserFactory

    page = browser_page
    page.goto(f"http://localhost:{host.port}" + host.page("/help", f"{asgi_server}/widget/{site.key}.js"))
    frame = open_chat(page)
    ask(frame, "Do you offer a free trial?")
    frame.locator(ANSWER).wait_for()
    conversation_id = off_loop(lambda: Conversation.objects.get().pk)
    dana = off_loop(lambda: agent_make(user=UserFactory(username="dana", first_name="Dana")))

    off_loop(handoffs.conversation_assign, conversation_id=conversation_id, agent=dana, assignee=dana)
    frame.get_by_text("Dana from Acme joined.").wait_for()
    ask(frame, "Great, can you extend mine?")
    # Acknowledged for the person: the visitor can write again at once (no assistant answer will come).
    frame.locator("li.u", has_text="can you extend mine?").wait_for()
    frame.locator("#w-send:not([disabled])").wait_for()
    assert off_loop(lambda: list(Message.objects.order_by("id").values_list("role", flat=True))) == [
        "user",
        "assistant",
        "user",
    ]

    off_loop(handoffs.agent_message_send, conversation_id=conversation_id, agent=dana, text="Done: 14 more days.")
    reply = frame.locator("li.p", has_text="Done: 14 more days.")
    reply.wait_for()
    assert reply.locator(".who").text_content() == "Dana"

    page.reload()  # the transcript shows the person's message too
    frame = open_chat(page)
    frame.locator("li.p", has_text="Done: 14 more days.").wait_for()
