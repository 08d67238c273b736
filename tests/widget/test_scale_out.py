"""The widget on two server processes sharing PostgreSQL and Redis: a visitor's token, the rate limits,
the new-visitor limit and a site's spend cap hold across them (docs/widget.md, "Limits")."""

import asyncio
import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import websockets

from apps.prompts.services import prompt_seed_defaults
from apps.widget.models import Visitor
from tests.reliability.conftest import ask
from tests.reliability.test_scale_out import serving_two_processes
from tests.widget.factories import SiteFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.postgres]

VISITOR_LIMIT = 2  # questions per visitor and minute
NEW_VISITORS = 2  # per address and hour (both processes see the test's 127.0.0.1)


@pytest.fixture
def two_servers(redis_url, llm_upstream):
    with serving_two_processes(
        redis_url,
        llm_upstream,
        WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE=str(VISITOR_LIMIT),
        WIDGET_NEW_VISITORS_PER_IP_PER_HOUR=str(NEW_VISITORS),
        WIDGET_SITE_DAILY_SPEND_CAP_USD="0.000001",  # any answer spends more (sites without a cap of their own)
    ) as ports:
        yield ports


@pytest.fixture
def sites(transactional_db):
    prompt_seed_defaults()
    open_site = SiteFactory(origin="https://help.example.com", daily_spend_cap_usd=Decimal("100.00"))
    capped = SiteFactory(origin="https://shop.example.com")
    return open_site, capped


def widget_socket(port: int, key: str, **params: str):
    """The frame's websocket to one process (the frame runs on the support origin)."""
    query = urlencode(params)
    return websockets.connect(
        f"ws://127.0.0.1:{port}/ws/widget/{key}/" + (f"?{query}" if query else ""),
        additional_headers={"Origin": f"http://127.0.0.1:{port}"},
        compression=None,
    )


async def hello(ws) -> tuple[dict, dict]:
    """The conversation frame and the visitor frame (which comes first)."""
    visitor = json.loads(await ws.recv())
    return json.loads(await ws.recv()), visitor


def test_a_visitor_token_the_limits_and_the_spend_cap_hold_across_processes(two_servers, sites) -> None:
    port_a, port_b = two_servers
    open_site, capped = sites

    async def scenario() -> dict:
        seen: dict = {}
        async with widget_socket(port_a, open_site.key) as ws:  # new visitor 1, on A
            conversation, visitor = await hello(ws)
            seen["first"] = (await ask(ws, "Do you offer a free trial?"))[-1]
        async with widget_socket(port_b, open_site.key, token=visitor["token"], conversation=conversation["id"]) as ws:
            seen["resumed"], seen["visitor_on_b"] = await hello(ws)  # the same visitor and chat on B
            seen["second"] = (await ask(ws, "And the price?"))[-1]
            seen["third"] = (await ask(ws, "And a discount?"))[-1]  # the visitor's minute counted on A and B

        async with widget_socket(port_b, capped.key) as ws:  # new visitor 2, on B: spends the site's cap
            _, shopper = await hello(ws)
            seen["capped_first"] = (await ask(ws, "Do you ship abroad?"))[-1]
        async with widget_socket(port_a, capped.key, token=shopper["token"]) as ws:
            await hello(ws)
            seen["capped_on_a"] = (await ask(ws, "And to Canada?"))[-1]  # the spend B logged is A's too

        async with widget_socket(port_a, open_site.key) as ws:  # a third new visitor from this address
            seen["refused"] = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            seen["refused_code"] = closed.value.rcvd.code
        return seen

    seen = asyncio.run(scenario())
    assert seen["first"]["type"] == "done" and seen["first"]["status"] == "complete"
    assert seen["resumed"]["type"] == "conversation" and [m["role"] for m in seen["resumed"]["messages"]] == [
        "user",
        "assistant",
    ]
    assert seen["visitor_on_b"]["type"] == "visitor"
    assert seen["second"]["type"] == "done"
    assert seen["third"]["type"] == "error" and seen["third"]["code"] == "rate_limited"

    assert seen["capped_first"]["type"] == "done"  # spend was 0 before it
    assert seen["capped_on_a"]["code"] == "spend_cap" and seen["capped_on_a"]["leave_message"] is True

    assert seen["refused"]["code"] == "rate_limited" and seen["refused_code"] == 4429
    assert Visitor.objects.count() == NEW_VISITORS
