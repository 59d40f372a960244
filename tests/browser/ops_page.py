"""The ops page in headless Chromium, JavaScript off: sign in, find the 422 by its code, open
it, replay it, and check in Prefect that the flow run the page reports exists.

Run by scripts/browser-test, which starts Prefect and flowgate and sets:
  FLOWGATE_ADMIN_URL    http://127.0.0.1:PORT of flowgate's admin listener
  FLOWGATE_ADMIN_TOKEN  the admin token
  PREFECT_API_URL       Prefect's API, ending in /api
  OPS_SCREENSHOT_DIR    where the screenshots go (default target/artifacts)
  CHROMIUM              the browser (default /usr/bin/chromium)
"""

import json
import os
import sys
import urllib.request

from playwright.sync_api import sync_playwright

ADMIN = os.environ["FLOWGATE_ADMIN_URL"].rstrip("/")
TOKEN = os.environ["FLOWGATE_ADMIN_TOKEN"]
PREFECT = os.environ["PREFECT_API_URL"].rstrip("/")
SHOTS = os.environ.get("OPS_SCREENSHOT_DIR", "target/artifacts")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def step(message):
    print(f"browser-test: {message}", flush=True)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def prefect_get(path):
    with urllib.request.urlopen(f"{PREFECT}{path}", timeout=10) as response:
        return json.load(response)


def main():
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        # No script: the page must work without it (its CSP allows none anyway).
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": 1280, "height": 900}
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))

        response = page.goto(f"{ADMIN}/admin/")
        check(response.status == 200, f"sign-in page: {response.status}")
        check(response.headers.get("cache-control") == "no-store", "no-store on the page")
        check(page.locator("#token").count() == 1, "the sign-in form is shown")
        step("signing in")
        page.fill("#token", TOKEN)
        page.click("form[action='/admin/session'] button[type=submit]")
        page.wait_for_selector("#rejections")
        cookies = [c for c in context.cookies() if c["name"] == "flowgate_session"]
        check(len(cookies) == 1, f"one session cookie: {cookies}")
        check(cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict", f"{cookies[0]}")

        step("filtering rejections by code validation_failed")
        page.fill("#filter-code", "validation_failed")
        page.click("#filter")
        page.wait_for_url("**code=validation_failed**")
        rows = page.locator("#rejection-list tbody tr")
        check(rows.count() >= 1, "the 422 is listed")
        check("validation_failed" in rows.first.inner_text(), rows.first.inner_text())

        step("opening the record")
        rows.first.locator("a.open").click()
        page.wait_for_selector("#replay-button")
        errors = page.inner_text("#field-errors")
        check("phone" in errors, f"the field error names the missing field: {errors}")

        step("replaying it")
        page.click("#replay-button")
        page.wait_for_selector("#replay-result")
        outcome = page.get_attribute("#replay-result", "data-outcome")
        check(outcome == "created", f"replay outcome: {outcome}: {page.inner_text('#replay-result')}")
        run_id = page.inner_text("#replay-flow-run-id").strip()
        step(f"the page reports flow run {run_id}")
        page.screenshot(path=os.path.join(SHOTS, "ops-page.png"), full_page=True)

        # The dashboard as a phone shows it.
        phone = browser.new_context(
            java_script_enabled=False,
            viewport={"width": 390, "height": 844},
            is_mobile=True,
        )
        phone.add_cookies(context.cookies())
        phone_page = phone.new_page()
        phone_page.goto(f"{ADMIN}/admin/")
        phone_page.wait_for_selector("#routes")
        phone_page.screenshot(path=os.path.join(SHOTS, "ops-page-phone.png"), full_page=True)
        check(not failed, f"no request failed: {failed}")
        browser.close()

    run = prefect_get(f"/flow_runs/{run_id}")
    check(run.get("id") == run_id, f"Prefect knows flow run {run_id}: {run}")
    deployment = prefect_get(f"/deployments/{run['deployment_id']}")
    check(deployment.get("name") == "website", f"the run is the website deployment's: {deployment}")
    state = (run.get("state") or {}).get("type")
    step(f"Prefect has flow run {run_id} (state {state}); screenshots in {SHOTS}")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any failure fails the test, with its reason
        print(f"browser-test: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
