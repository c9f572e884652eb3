"""Fixtures for the browser tests: the real app as `make run` starts it (one per test
module), and Debian's /usr/bin/chromium driven by Playwright. Page helpers are in pages.py."""

import re

import pytest

from tests.e2e.pages import CHROMIUM, FLAGS, free_port


@pytest.fixture(scope="module")
def app_url():
    from workbench.ui.app import LAUNCH_OPTIONS, build_app

    app = build_app().queue()
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(app_url)
    page.get_by_text(re.compile("Loaded preset|Loaded the base model")).wait_for()
    yield page
    page.close()
