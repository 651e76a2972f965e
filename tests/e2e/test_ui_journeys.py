"""The course's user journeys, clicked through in a real browser against the real stack:
trigger `etl` in the Airflow UI and watch it succeed, find the champion in the MLflow UI,
browse the data lake in the S3 console. (The prediction page's journey is
test_web_page_predicts_in_a_real_browser in test_serving_e2e.py.)

Each journey asserts on what the page shows, checked against the services' own APIs, and
saves a screenshot (see browser.py)."""

from __future__ import annotations

import re
import time
from urllib.parse import quote, unquote

import pytest
from browser import browser_page, screenshot
from sklearn.linear_model import LogisticRegression
from synthetic_model import register_synthetic_model

from mlplatform import registry
from mlplatform.airflow_client import AirflowClient
from mlplatform.lake import s3_client
from mlplatform.settings import Settings

ETL_TIMEOUT_SECONDS = 600  # the whole ETL on a loaded 2-core machine; it usually takes 1-3 min
FAILED_RUN_STATES = {"Failed", "Upstream Failed"}


def test_airflow_ui_login_trigger_etl_and_see_the_run_succeed(stack: Settings) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    client = AirflowClient(stack)
    client.wait_for_dag("etl")  # parsed by the dag-processor, so it is listed
    runs_before = {r["dag_run_id"] for r in client.runs("etl")}
    with browser_page("airflow-etl-run") as page:
        page.goto(f"{stack.airflow_url}/")
        page.get_by_label("Username").fill(stack.AIRFLOW_ADMIN_USER)
        page.get_by_label("Password").fill(stack.AIRFLOW_ADMIN_PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        page.get_by_role("link", name="Dags", exact=True).click()
        page.get_by_placeholder("Search Dags").fill("etl")
        # Click once the list shows the search's result: a click during the re-render is lost.
        expect(page.get_by_text("1 Dag", exact=True)).to_be_visible()
        page.get_by_role("link", name="etl", exact=True).click()
        page.wait_for_url(re.compile(r"/dags/etl$"))

        _trigger_in_dialog(page, "etl")
        clicked = client.wait_for_new_run("etl", runs_before, timeout=60)["dag_run_id"]
        try:  # the UI opens the new run's page...
            page.wait_for_url(re.compile(r"/dags/etl/runs/[^/]+$"), timeout=30_000)
        except PlaywrightTimeout:  # ...unless a re-render dropped that; then go there
            page.goto(f"{stack.airflow_url}/dags/etl/runs/{quote(clicked)}")
        run_id = unquote(page.url.rsplit("/runs/", 1)[1])
        assert run_id == clicked, "the page shows the run the click made"
        new_runs = {r["dag_run_id"] for r in client.runs("etl")} - runs_before
        assert new_runs == {clicked}, f"one click, one run: {new_runs}"
        heading = page.get_by_role("heading", name=run_id, exact=True)
        expect(heading).to_be_visible()
        badge = page.locator(f'h2:text-is("{run_id}") ~ [data-testid="state-badge"]')
        state = _wait_for_final_state(page, badge)
        screenshot(page, "airflow-etl-run")

    assert state == "Success", f"the etl run {run_id} shows {state!r} in the UI"
    assert client.run_state("etl", run_id) == "success"  # what the UI showed is what Airflow holds


def _trigger_in_dialog(page, dag_id: str, attempts: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Click Trigger, then confirm in the dialog. The DAG page re-renders while its data
    arrives, which can close a dialog opened early: then open it again, as a person would.
    (The test then checks that exactly one run came of it.)"""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    for attempt in range(1, attempts + 1):
        page.get_by_role("button", name="Trigger Dag").click()
        dialog = page.get_by_role("dialog")
        try:
            expect(dialog).to_contain_text(f"Trigger Dag - {dag_id}")
            dialog.get_by_role("button", name="Trigger", exact=True).click(timeout=15_000)
            return
        except (PlaywrightTimeout, AssertionError):
            if attempt == attempts:
                raise


def _wait_for_final_state(page, badge) -> str:  # type: ignore[no-untyped-def]
    """The run's state badge, polled until the run ends (bounded). The page refreshes itself
    while a run is active; a reload every half minute covers a missed refresh."""
    deadline = time.monotonic() + ETL_TIMEOUT_SECONDS
    reload_at = time.monotonic() + 30
    while True:
        state = badge.inner_text().strip()
        if state == "Success" or state in FAILED_RUN_STATES:
            return state
        assert time.monotonic() < deadline, f"the run still shows {state!r}"
        if time.monotonic() > reload_at:
            page.reload()
            reload_at = time.monotonic() + 30
        page.wait_for_timeout(3000)


@pytest.fixture
def champion_version(stack: Settings) -> str:
    """The champion's version: the pipeline tests' when they ran first, else a synthetic one."""
    champion = registry.get_champion(stack)
    if champion is None:
        champion = register_synthetic_model(LogisticRegression(max_iter=500), stack, seed=0)
    return str(champion.version)


def test_mlflow_ui_shows_the_registered_model_with_its_champion_alias(
    stack: Settings, champion_version: str
) -> None:
    from playwright.sync_api import expect

    with browser_page("mlflow-champion") as page:
        # MLflow 3.17 announces its new registry UI in a modal once per browser: take the offer,
        # as a person would (it is the view that shows aliases).
        page.add_locator_handler(
            page.get_by_role("button", name="Try it now"),
            lambda button: button.click(),
        )
        page.goto(f"{stack.mlflow_tracking_uri}/")
        page.get_by_role("button", name="Model training", exact=True).click()
        page.get_by_role("link", name="Model registry").click()
        page.get_by_role("link", name=stack.REGISTERED_MODEL_NAME, exact=True).click()
        expect(page.get_by_role("heading", name=stack.REGISTERED_MODEL_NAME)).to_be_visible()

        # Each version's row starts with its link; the UI writes "@&nbsp;champion", hence \s.
        rows = page.get_by_role("row").filter(
            has=page.get_by_role("link", name=re.compile(r"^Version \d+$"))
        )
        champion_row = rows.filter(
            has=page.get_by_role("link", name=f"Version {champion_version}", exact=True)
        )
        expect(champion_row).to_have_count(1)
        expect(champion_row).to_contain_text(re.compile(r"@\schampion"))
        # The alias is on that version only.
        expect(rows.filter(has_text=re.compile(r"@\schampion"))).to_have_count(1)
        _close_assistant_panel(page)
        screenshot(page, "mlflow-champion")


def _close_assistant_panel(page) -> None:  # type: ignore[no-untyped-def]
    """MLflow opens its chat assistant beside every page: close it, so the screenshot shows
    the registry. Only cosmetic, hence no failure when it is absent."""
    close = page.get_by_role("button", name="Close")
    if close.count() == 1:
        close.click()


def test_s3_console_login_shows_the_data_bucket_and_its_prefixes(stack: Settings) -> None:
    from playwright.sync_api import expect

    listing = s3_client(stack).list_objects_v2(Bucket=stack.DATA_REPO_BUCKET_NAME, Delimiter="/")
    prefixes = {p["Prefix"].rstrip("/") for p in listing.get("CommonPrefixes", [])}
    assert "landing" in prefixes, prefixes  # the stack seeds the landing zone at start

    with browser_page("s3-console-data-bucket") as page:
        page.goto(f"http://{stack.MINIO_HOST}:{stack.MINIO_PORT_UI}/")
        page.get_by_label("Username").fill(stack.MINIO_ACCESS_KEY)
        page.get_by_label("Password").fill(stack.MINIO_SECRET_ACCESS_KEY)
        page.get_by_role("button", name="Sign In").click()

        page.get_by_role("link", name=_icon_and("Buckets")).first.click()
        main = page.locator("main")
        for bucket in (stack.DATA_REPO_BUCKET_NAME, stack.MLFLOW_BUCKET_NAME):
            expect(main.get_by_role("link", name=_icon_and(bucket))).to_be_visible()
        main.get_by_role("link", name=_icon_and(stack.DATA_REPO_BUCKET_NAME)).click()

        expect(
            page.get_by_role("heading", name=f"S3 Bucket: {stack.DATA_REPO_BUCKET_NAME}")
        ).to_be_visible()
        for prefix in sorted(prefixes):  # every prefix S3 lists, as a folder in the console
            expect(main.get_by_role("link", name=_icon_and(prefix))).to_be_visible()
        screenshot(page, "s3-console-data-bucket")


def _icon_and(text: str) -> re.Pattern[str]:
    """The console's link names start with an icon font glyph: match the text after it."""
    return re.compile(rf"^\W*{re.escape(text)}$")
