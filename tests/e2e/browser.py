"""Browser helpers for the end-to-end tests: Debian's chromium through Playwright (never a downloaded browser),
axe-core's WCAG 2 A/AA check, keyboard-only navigation."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parents[2] / ".cache" / "axe-core"  # scripts/fetch_axe.py, at set-up


@contextmanager
def chromium(trusted_tls_certificate: Path | None = None) -> Iterator[Any]:
    """Debian's chromium; with ``trusted_tls_certificate`` it trusts exactly that server key (its SPKI pinned on
    the command line, as a browser that trusts the Signet TLS root would)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium")
    assert exe, "Debian's chromium is missing (the Makefile's set-up installs it)"
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    if trusted_tls_certificate is not None:
        cert = x509.load_pem_x509_certificate(trusted_tls_certificate.read_bytes())
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        args.append(f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(spki).digest()).decode()}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=args)
        try:
            yield browser
        finally:
            browser.close()


def axe(page: Any) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page (ids and how many nodes); the page's context needs
    ``bypass_csp=True`` (the pages allow no script)."""
    [script] = sorted(AXE.glob("axe-*.min.js"))
    page.add_script_tag(path=str(script))
    return page.evaluate("async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})).violations"
                         ".map(v => `${v.id} (${v.nodes.length})`)")


def tab_to(page: Any, text: str, limit: int = 60) -> None:
    """Press Tab until the focused element is the control named ``text`` (a label, a button's or link's text)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate("() => { const e = document.activeElement; return (e.labels && e.labels[0] ? "
                             "e.labels[0].innerText : '') + ' ' + (e.innerText || e.value || '') }")
        if text in here:
            return
    raise AssertionError(f"{text!r} cannot be reached with the keyboard")


def save_and_send(page: Any) -> None:
    """On a draft's placement page: save the placement, then send the draft, with the keyboard."""
    tab_to(page, "Save placement")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Signature boxes saved")
    tab_to(page, "Send")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Sent.")
