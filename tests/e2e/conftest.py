"""Fixtures for the browser tests: the real app as `make run` starts it (one per test
module), and Debian's /usr/bin/chromium driven by Playwright. Page helpers are in pages.py."""

import re

import pytest

from tests.e2e.pages import CHROMIUM, FLAGS, SHOTS, free_port


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test, so the page fixture knows the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


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
def page(browser, app_url, request):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(120_000)
    page.goto(app_url)
    page.get_by_text(re.compile("Loaded preset|Loaded the base model")).wait_for()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:  # what the user saw, in the CI log and as a screenshot
        shot = SHOTS / f"failed-{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        boxes = page.evaluate("() => [...document.querySelectorAll('textarea')].map(t => t.value).filter(v => v)")
        print(f"screen at failure ({shot}):", page.inner_text("body")[-3000:], "boxes:", *boxes, sep="\n")
    page.close()
