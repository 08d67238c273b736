import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def test_login_works_and_redirects_to_the_chat(client) -> None:
    get_user_model().objects.create_user(username="bob", password="demo-password")
    response = client.post("/accounts/login/", {"username": "bob", "password": "demo-password"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_password_guessing_is_rate_limited_per_username(client, settings) -> None:
    settings.LOGIN_RATE_LIMIT_PER_MINUTE = 3
    get_user_model().objects.create_user(username="bob", password="demo-password")
    statuses = [
        client.post(
            "/accounts/login/", {"username": "bob", "password": f"guess-{i}"}, REMOTE_ADDR=f"10.0.0.{i}"
        ).status_code
        for i in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]  # different IPs: the per-username limit still holds
    blocked = client.post("/accounts/login/", {"username": "bob", "password": "demo-password"}, REMOTE_ADDR="10.0.1.1")
    assert blocked.status_code == 429 and b"Too many login attempts" in blocked.content


def test_login_attempts_are_rate_limited_per_ip(client, settings) -> None:
    settings.LOGIN_RATE_LIMIT_PER_MINUTE = 2
    statuses = [
        client.post("/accounts/login/", {"username": f"user{i}", "password": "x"}).status_code for i in range(4)
    ]
    assert statuses == [200, 200, 429, 429]
