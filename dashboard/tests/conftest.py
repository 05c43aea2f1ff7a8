"""Fixtures for the browser tests: Debian's Chromium through Playwright, and real
daphne processes (conftest.DaphneProcess) against the test database."""
from __future__ import annotations

import os

import pytest
from playwright.sync_api import sync_playwright

from conftest import DaphneProcess
from dashboard.tests.live_page import stop_daphne

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps its event loop registered as running in this
    # thread, which trips Django's async-safety check on the test's own (plain,
    # synchronous) ORM calls and the DB flush. The documented way out is this flag,
    # for this test process only; the daphne under test runs without it (below).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _daphne() -> DaphneProcess:
    # A real daphne (conftest.DaphneProcess) with Django's async-safety check on.
    return DaphneProcess(extra_env={"DJANGO_ALLOW_ASYNC_UNSAFE": ""}).start()


@pytest.fixture(scope="module")
def _module_server(django_db_setup):
    daphne = _daphne()
    yield daphne
    stop_daphne(daphne)


@pytest.fixture
def server(_module_server, transactional_db):
    """One daphne shared by the tests that never stop it (starting one costs seconds);
    each test still gets a freshly flushed database."""
    return _module_server


@pytest.fixture
def restartable_server(transactional_db):
    """A daphne of the test's own, for tests that stop and restart it. List it before
    `page` so the browser closes before the server stops."""
    daphne = _daphne()
    yield daphne
    stop_daphne(daphne)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
