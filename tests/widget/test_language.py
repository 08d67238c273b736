"""An anonymous visitor is answered in their browser's language: the widget sends navigator.languages
(the handshake's Accept-Language otherwise), checked against the languages the assistant serves, and it
reaches the model in the question's user turn — never in the cached system blocks."""

import pytest

from apps.upstream.language import GREETING, LEAD_IN
from apps.widget.selectors import visitor_language
from tests.conftest import received_requests
from tests.widget.conftest import WidgetSocket
from tests.widget.test_consumer import sign

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("requested", "accept_language", "expected"),
    [
        ("de-AT,de,en-US", "", "de"),
        ("fr", "de-DE,de;q=0.9", "fr"),  # what the widget sends wins over the header
        (None, "ja;q=1, nl-BE;q=0.5, es;q=0.8", "es"),  # the served language with the highest q
        ("xx,klingon,<script>", "fr;q=0,pt", "pt"),  # unknown codes and q=0 are skipped
        ("en_GB", "", "en"),
        (["de"], "", ""),  # not a string: ignored
        ("", "q=;;,", ""),
        (None, "", ""),
    ],
)
def test_the_visitors_language_is_the_first_served_one_the_browser_names(requested, accept_language, expected):
    assert visitor_language(requested=requested, accept_language=accept_language) == expected


def last_chat_request(upstream) -> dict:
    for entry in reversed(received_requests(upstream)):
        body = entry.get("body")
        if isinstance(body, dict) and body.get("stream"):
            return body
    raise AssertionError("no chat request reached the emulator")


def new_user_turn(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return "\n".join(block.get("text", "") for block in content if isinstance(block, dict))


async def greet(key: str, **open_kwargs) -> list[dict]:
    """A new visitor says hello (no language of its own in it); the frames of the answer."""
    socket = await WidgetSocket.open(key, **open_kwargs)
    await socket.hello()
    frames = await socket.ask("Hey")
    await socket.close()
    return frames


def shown(frames: list[dict]) -> str:
    return "".join(frame["text"] for frame in frames if frame["type"] == "delta")


async def test_an_anonymous_visitor_is_answered_in_the_browsers_language(widget_env, site):
    german = await greet(site.key, lang="de-DE,de,en")
    german_request = last_chat_request(widget_env)
    french = await greet(site.key, headers=((b"accept-language", b"fr-FR,fr;q=0.9,en;q=0.5"),))
    french_request = last_chat_request(widget_env)

    # A greeting, or what the help centre has (the engines' searches differ), introduced in that language.
    assert shown(german).startswith((GREETING["de"], LEAD_IN["de"]))
    assert shown(french).startswith((GREETING["fr"], LEAD_IN["fr"]))
    assert '"language": "de"' in new_user_turn(german_request) and "<visitor_context>" in new_user_turn(german_request)
    assert '"language": "fr"' in new_user_turn(french_request)
    # The cached prefix is the same bytes whatever the visitor's language.
    assert german_request["system"] == french_request["system"]
    assert "visitor_context" not in str(german_request["system"])


async def test_without_a_served_language_nothing_is_added(widget_env, site):
    frames = await greet(site.key, lang="ja-JP,ko", headers=((b"accept-language", b"zh-CN"),))
    assert "visitor_context" not in new_user_turn(last_chat_request(widget_env))
    assert shown(frames).startswith((GREETING["en"], LEAD_IN["en"]))


async def test_a_verified_customer_keeps_their_accounts_language(widget_env, site, carol):
    await greet(site.key, lang="de", user_id="carol", user_hash=sign("carol"))
    sent = new_user_turn(last_chat_request(widget_env))
    assert "<account_context>" in sent and "visitor_context" not in sent
