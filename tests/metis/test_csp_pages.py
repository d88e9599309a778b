"""No inline script or style, which the Content Security Policy refuses: not in our templates, and
not on any admin page Django or django-celery-beat renders for the models we register.

A quick net under the browser test (test_csp_browser.py), which visits the pages people use:
this one reads the HTML of every change list, add form and change form, and every template file,
including pages no test visits.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse

from documents.models import Document
from tenants import db

ROOT = Path(__file__).resolve().parents[2]
# What CSP executes without a source: json_script's data is not among it.
DATA_SCRIPT_TYPES = {"application/json", "application/ld+json"}


class InlineCode(HTMLParser):
    """Collect what a policy without 'unsafe-inline' would refuse, one line each."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        where = f"line {self.getpos()[0]}: <{tag}>"
        attributes = dict(attrs)
        if tag == "style":
            self.found.append(f"{where} element")
        script_type = (attributes.get("type") or "").lower()
        if tag == "script" and "src" not in attributes and script_type not in DATA_SCRIPT_TYPES:
            self.found.append(f"{where} without src")
        for name, value in attrs:
            if name == "style":
                self.found.append(f"{where} style attribute")
            elif re.fullmatch(r"on[a-z]+", name):
                self.found.append(f"{where} {name} handler")
            elif (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{where} javascript: URL in {name}")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


def template_files() -> list[Path]:
    folders = [ROOT / "templates", *ROOT.glob("*/templates")]
    return sorted(path for folder in folders for path in folder.rglob("*.html"))


def test_the_checker_sees_each_kind_of_inline_code():
    html = """<style>p {}</style><p style="color: red">x</p><a href="javascript:go()">y</a>
    <button onclick="go()">z</button><script>go()</script><script src="/static/a.js"></script>
    <script id="d" type="application/json">{"a": 1}</script>"""
    assert inline_code(html) == [
        "line 1: <style> element",
        "line 1: <p> style attribute",
        "line 1: <a> javascript: URL in href",
        "line 2: <button> onclick handler",
        "line 2: <script> without src",
    ]


def test_the_template_scan_sees_every_template():
    names = {path.relative_to(ROOT).as_posix() for path in template_files()}
    assert {"templates/tenants/base.html", "templates/admin/base_site.html"} <= names


@pytest.mark.parametrize("path", template_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_templates_have_no_inline_script_or_style(path):
    assert inline_code(path.read_text()) == []


@pytest.fixture
def staff_in_tenant(staff_client, tenant, tenant_user):
    """The staff client under the tenant's context, with a document in it to list and change."""
    with db.tenant_context(tenant.pk):
        Document.objects.create(
            tenant=tenant,
            document_type="pan",
            original_filename="pan.pdf",
            content_type="application/pdf",
            size_bytes=1000,
            sha256="0" * 64,
            storage_key=f"tenants/{tenant.pk}/documents/pan.pdf",
        )
    response = staff_client.post(reverse("admin:tenants:tenant-context"), {"tenant": tenant.pk})
    assert response.status_code == 302
    return staff_client


def admin_pages(client) -> dict[str, str]:
    """Return the HTML of every registered model's change list, add form and first change form."""
    pages = {}
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        changelist = reverse(f"{prefix}_changelist")
        html = client.get(changelist).content.decode()
        pages[changelist] = html
        first = re.search(rf'href="({re.escape(changelist)}[^/"]+/change/)', html)
        urls = [reverse(f"{prefix}_add"), *([first.group(1)] if first else [])]
        for url in urls:
            response = client.get(url)
            if response.status_code == 200:
                pages[url] = response.content.decode()
    return pages


def test_admin_pages_have_no_inline_script_or_style(staff_in_tenant):
    pages = admin_pages(staff_in_tenant)

    assert "/admin/documents/document/" in pages
    assert any(re.fullmatch(r"/admin/documents/document/[^/]+/change/", url) for url in pages)
    # django-celery-beat's own form template carries an inline script; ours overrides it.
    assert any(
        re.fullmatch(r"/admin/django_celery_beat/periodictask/\d+/change/", url) for url in pages
    )
    assert {url: inline_code(html) for url, html in pages.items() if inline_code(html)} == {}
