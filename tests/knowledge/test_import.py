"""The import_articles command: front matter, headings as titles, updates, bad files reported and skipped."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.knowledge import search, selectors
from apps.knowledge.models import Article

pytestmark = pytest.mark.django_db


def write(folder: Path, name: str, text: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_import_creates_then_updates_and_publishes(tmp_path: Path) -> None:
    write(
        tmp_path,
        "billing/card.md",
        "---\ntitle: Kreditkarte ändern\nlanguage: de\ntags: [billing]\nurl: https://help.example.com/de/karte\n---\n"
        "Öffnen Sie Abrechnung und wählen Sie Zahlungsmethode ändern.\n",
    )
    write(tmp_path, "reset.md", "# Reset your password\n\nUse the Forgot password link on the sign-in page.\n")
    call_command("import_articles", str(tmp_path), "--publish")

    card = Article.objects.get(external_id="file:billing/card.md")
    assert (card.title, card.language, card.tags, card.status) == ("Kreditkarte ändern", "de", ["billing"], "published")
    reset = Article.objects.get(external_id="file:reset.md")
    assert reset.title == "Reset your password"
    assert reset.body.startswith("Use the Forgot password link")
    assert selectors.snapshot_current().article_count == 2
    assert [hit.title for hit in search.search("Wie kann ich meine Kreditkarte ändern?", "de", 1)] == [card.title]

    write(tmp_path, "reset.md", "# Reset your password\n\nUse the link in the sign-in page's footer.\n")
    call_command("import_articles", str(tmp_path), "--publish")
    assert Article.objects.count() == 2
    reset.refresh_from_db()
    assert "footer" in reset.body
    assert "footer" in selectors.snapshot_current().articles[1]["body"]


def test_a_bad_file_is_reported_and_the_others_still_import(tmp_path: Path) -> None:
    write(tmp_path, "good.md", "# Good\n\nFine text.\n")
    write(tmp_path, "bad-yaml.md", "---\ntitle: [unclosed\n---\nbody\n")
    write(tmp_path, "bad-language.md", "---\ntitle: X\nlanguage: klingon\n---\nbody\n")
    with pytest.raises(CommandError, match="2 file"):
        call_command("import_articles", str(tmp_path))
    assert list(Article.objects.values_list("title", "status")) == [("Good", "draft")]


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not a directory"):
        call_command("import_articles", str(tmp_path / "nope"))
