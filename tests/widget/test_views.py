"""The loader script and the chat frame: who gets them, and the framing headers."""

import pytest
from django.core.exceptions import ValidationError

from apps.widget.models import Site
from tests.widget.factories import SiteFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site():
    return SiteFactory(origin="https://help.example.com", name="Acme Help", colour="#0a7d4f")


def test_the_script_loads_for_the_sites_origin_with_its_name_and_colour(client, site):
    response = client.get(f"/widget/{site.key}.js", HTTP_ORIGIN="https://help.example.com")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Access-Control-Allow-Origin"] == "https://help.example.com"
    body = response.content.decode()
    assert '"name": "Acme Help"' in body and '"colour": "#0a7d4f"' in body
    assert f"/widget/{site.key}/frame/" in body


def test_the_script_loads_by_referer_when_no_origin_is_sent(client, site):
    response = client.get(f"/widget/{site.key}.js", HTTP_REFERER="https://help.example.com/articles/7?q=1")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_ORIGIN": "https://evil.example.net"},
        {"HTTP_ORIGIN": "http://help.example.com"},  # another scheme is another origin
        {"HTTP_REFERER": "https://help.example.com.evil.net/"},
        {},
    ],
)
def test_the_script_is_404_on_other_origins(client, site, headers):
    response = client.get(f"/widget/{site.key}.js", **headers)
    assert response.status_code == 404
    assert "Access-Control-Allow-Origin" not in response


def test_unknown_and_disabled_sites_are_404(client, site):
    assert client.get("/widget/nope.js", HTTP_ORIGIN=site.origin).status_code == 404
    assert client.get("/widget/nope/frame/").status_code == 404
    Site.objects.filter(pk=site.pk).update(enabled=False)
    assert client.get(f"/widget/{site.key}.js", HTTP_ORIGIN=site.origin).status_code == 404
    assert client.get(f"/widget/{site.key}/frame/").status_code == 404


def test_the_frame_may_be_framed_by_the_sites_origin_only(client, site):
    response = client.get(f"/widget/{site.key}/frame/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors https://help.example.com;" in csp
    assert "X-Frame-Options" not in response  # it cannot name an origin; it would contradict the CSP
    assert "Acme Help" in response.content.decode()


def test_the_logged_in_chat_page_still_refuses_other_origins(client):
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] in ("DENY", "SAMEORIGIN")


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://Help.Example.com/", "https://help.example.com"),
        ("https://help.example.com:443", "https://help.example.com"),
        ("http://127.0.0.1:8001", "http://127.0.0.1:8001"),
    ],
)
def test_admin_origins_are_normalised(given, stored):
    site = Site(name="x", origin=given)
    site.full_clean()
    assert site.origin == stored


@pytest.mark.parametrize("bad", ["help.example.com", "https://help.example.com/path", "ftp://x.org", "https://"])
def test_admin_refuses_what_is_not_an_origin(bad):
    with pytest.raises(ValidationError):
        Site(name="x", origin=bad).full_clean()


def test_admin_refuses_a_bad_colour():
    with pytest.raises(ValidationError):
        Site(name="x", origin="https://a.example", colour="blue").full_clean()


def test_admin_lists_and_adds_sites(admin_client, site):
    assert admin_client.get("/admin/widget/site/").status_code == 200
    page = admin_client.get(f"/admin/widget/site/{site.pk}/change/")
    assert site.key in page.content.decode()
    response = admin_client.post(
        "/admin/widget/site/add/",
        {
            "name": "Marketing",
            "origin": "https://WWW.example.com/",
            "enabled": "on",
            "colour": "#123456",
            "secret": "a-long-secret-value",
        },
    )
    assert response.status_code == 302
    assert Site.objects.get(name="Marketing").origin == "https://www.example.com"


def test_the_widget_is_under_20_kib_gzipped_in_all():
    import gzip
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = [
        "static/widget/loader.js",
        "static/widget/frame.js",
        "static/widget/frame.css",
        "templates/widget/frame.html",
    ]
    total = sum(len(gzip.compress((root / name).read_bytes(), 9)) for name in files)
    assert total <= 20 * 1024, total


def test_the_frames_strings_are_complete_in_every_language_and_never_given_twice():
    # A key given twice in one language silently replaces the first (once, the connection state showed a
    # waiting notice); a key missing in one language shows "undefined" there.
    import re
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "static/widget/frame.js").read_text(encoding="utf-8")
    table = source[source.index("var STRINGS = {") : source.index("var lang =")]
    blocks = re.split(r"\n    (en|de|fr): \{", table)[1:]
    keys = {
        lang: re.findall(r"(?:^|[{,\s])(\w+): \"", body) for lang, body in zip(blocks[::2], blocks[1::2], strict=True)
    }
    assert set(keys) == {"en", "de", "fr"}
    for lang, names in keys.items():
        assert len(names) == len(set(names)), (lang, sorted(n for n in names if names.count(n) > 1))
    assert set(keys["de"]) == set(keys["en"]) == set(keys["fr"])
    assert {"waitNow", "waitOffline", "waitAway", "agent_joined", "choice", "human"} <= set(keys["en"])
