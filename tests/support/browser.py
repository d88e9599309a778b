"""The real browser the browser tests drive: Debian's chromium, headless, through Playwright.

The `browser` and `committed_live_server` fixtures (tests/conftest.py) use it; so does any test
that needs a page's pixels (`non_blank_canvases`).
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def non_blank_canvases(page) -> dict[str, bool]:
    """Return, for each canvas on the page by id, whether anything was painted on it."""
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('canvas')].map(c => {
            const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let painted = false;
            for (let i = 3; i < pixels.length; i += 4) {
                if (pixels[i] !== 0) { painted = true; break; }
            }
            return [c.id, painted];
        }))"""
    )
