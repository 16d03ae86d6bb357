"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium with the flags it
needs in a container, and where screenshots are kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserType, Locator, Page

from tests.conftest import ARTIFACTS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# WCAG AA for normal text.
MINIMUM_CONTRAST = 4.5
# The contrast of an element's text with the first opaque background behind it.
CONTRAST_JS = """element => {
    const rgb = value => value.match(/[\\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => {
        const linear = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    };
    let behind = element;
    let background = rgb(getComputedStyle(behind).backgroundColor);
    while (background.length === 4 && background[3] === 0 && behind.parentElement) {
        behind = behind.parentElement;
        background = rgb(getComputedStyle(behind).backgroundColor);
    }
    const [light, dark] = [luminance(rgb(getComputedStyle(element).color)), luminance(background)]
        .sort((a, b) => b - a);
    return (light + 0.05) / (dark + 0.05);
}"""

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)",
)


def launch(chromium: BrowserType) -> Browser:
    return chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as artifacts/<name>.png; return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path


def contrast(element: Locator) -> float:
    """The contrast ratio of an element's text with what is behind it."""
    ratio: float = element.evaluate(CONTRAST_JS)
    return ratio
