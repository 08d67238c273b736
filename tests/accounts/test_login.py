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


@pytest.mark.usefixtures("one_rate_limit_window")
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


@pytest.mark.usefixtures("one_rate_limit_window")
def test_login_attempts_are_rate_limited_per_ip(client, settings) -> None:
    settings.LOGIN_RATE_LIMIT_PER_MINUTE = 2
    statuses = [
        client.post("/accounts/login/", {"username": f"user{i}", "password": "x"}).status_code for i in range(4)
    ]
    assert statuses == [200, 200, 429, 429]


def _demo_panel(client) -> str:
    page = client.get("/accounts/login/").content.decode()
    start = page.find('class="demo-logins"')
    return "" if start < 0 else page[start : page.index("</aside>", start)]


def test_the_login_page_lists_the_demo_accounts_once_they_are_seeded(client) -> None:
    from apps.accounts.demo import demo_accounts_seed

    assert _demo_panel(client) == ""
    demo_accounts_seed()

    panel = _demo_panel(client)
    for username in ("admin", "alice", "bob", "carol"):
        assert f"<code>{username}</code>" in panel
    assert "<code>demo-password</code>" in panel and 'href="/admin/"' in panel
    assert "Pro plan" in panel and "Enterprise plan" in panel
    # What the page lists logs in.
    assert client.post("/accounts/login/", {"username": "carol", "password": "demo-password"}).status_code == 302


def test_no_demo_accounts_are_advertised_for_real_users_with_demo_names(client) -> None:
    from apps.accounts.demo import demo_accounts_seed

    get_user_model().objects.create_user(username="admin", email="it@real.example", password="s3cret-enough")
    get_user_model().objects.create_user(username="alice", email="alice@real.example", password="s3cret-enough")
    assert _demo_panel(client) == ""

    demo_accounts_seed()  # bob and carol are seeded; the real admin and alice are left alone
    panel = _demo_panel(client)
    assert "<code>bob</code>" in panel and "<code>carol</code>" in panel
    assert "<code>admin</code>" not in panel and "<code>alice</code>" not in panel
