"""The inspector page of `wahooks serve`, tested in a real browser (Debian's chromium, driven by
Playwright pointed at that binary; nothing is downloaded).

    python tests/browser/inspector_test.py --wahooks target/debug/wahooks \
        --moto .venv/bin/moto_server --chromium /usr/bin/chromium --screenshot target/browser/inspector.png

Starts the local stack on free loopback ports, sends a valid Z-API text, a forged Meta request
and a duplicate of the Z-API text, then checks what the page shows for each (the event id, the
401 and its reason, "duplicate"), that it updates live, that filters hide what they should, that
replay produces a duplicate, that "copy as curl" masks the URL token and, with it put back,
reproduces a request, and that no token or secret appears in the page. Saves a screenshot. Exits 1 on the first failed check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import check, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wahooks", required=True)
    parser.add_argument("--moto", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--screenshot", required=True)
    args = parser.parse_args()

    port, aws_port = free_port(), free_port()
    state = Path(tempfile.mkdtemp(prefix="wahooks-inspector-"))
    serve = subprocess.Popen(
        [args.wahooks, "serve", "--port", str(port), "--aws-port", str(aws_port),
         "--state-dir", str(state), "--moto", args.moto],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 90
        while not (state / "demo.json").exists():
            if serve.poll() is not None or time.time() > deadline:
                raise AssertionError("wahooks serve did not come up: " + (serve.stdout.read() if serve.stdout else ""))
            time.sleep(0.2)
        time.sleep(0.5)
        demo = json.loads((state / "demo.json").read_text())
        by = {e["provider"]: e for e in demo["endpoints"]}
        base = demo["base_url"]
        secrets = [e["token"] for e in demo["endpoints"]] + [e["secret"] for e in demo["endpoints"] if e["secret"]]

        text = (ROOT / "tests/fixtures/zapi/received-text.zapi-docs.json").read_bytes()
        status, first = post(by["zapi"]["url"] + "/message-received", text, {})
        check(status == 200 and len(first["accepted"]) == 1, "a valid Z-API text is accepted")
        event_id = first["accepted"][0]
        meta = (ROOT / "tests/fixtures/meta/meta-cloud-text-message.json").read_bytes()
        status, forged = post(by["meta"]["url"], meta, {"x-hub-signature-256": "sha256=" + "0" * 64})
        check(status == 401 and forged["code"] == "bad_signature", "a forged Meta request is refused")
        status, again = post(by["zapi"]["url"] + "/message-received", text, {})
        check(status == 200 and again["duplicates"] == [event_id], "the same text again is a duplicate")

        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=args.chromium,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(base + "/")
            rows = page.get_by_test_id("row")
            expect(rows).to_have_count(3)
            expect(page.locator("#live")).to_have_text("live")

            new_row = page.locator('[data-testid=row][data-seq="1"]')
            expect(new_row.get_by_test_id("event-id")).to_have_text(event_id)
            expect(new_row.get_by_test_id("outcome")).to_have_text("new")
            check(True, "the page shows the Z-API text's event id, new")
            forged_row = page.locator('[data-testid=row][data-seq="2"]')
            expect(forged_row.get_by_test_id("status")).to_have_text("401")
            expect(forged_row.get_by_test_id("reason")).to_contain_text("bad_signature")
            check(True, "the page shows the forged request's 401 and its reason")
            dup_row = page.locator('[data-testid=row][data-seq="3"]')
            expect(dup_row.get_by_test_id("outcome")).to_have_text("duplicate")
            expect(dup_row.get_by_test_id("event-id")).to_have_text(event_id)
            check(True, "the page shows the second delivery as a duplicate")
            # Newest first.
            check(rows.first.get_attribute("data-seq") == "3", "newest first")

            # Live: a request sent now appears without a reload.
            wwa = (ROOT / "tests/fixtures/wwa/apiwhatsappweb-received.json").read_bytes()
            status, _ = post(by["wwa"]["url"] + "/message-received", wwa, {})
            check(status == 200, "a WhatsApp Web API message is accepted")
            expect(rows).to_have_count(4)
            check(True, "the page updated live (server-sent events, no reload)")

            # The forged request's detail: the reason, and masked headers.
            forged_row.click()
            expect(page.get_by_test_id("detail-reason")).to_contain_text("bad_signature")
            expect(page.get_by_test_id("detail")).to_contain_text("refused (hub-signature-256)")

            # Filters.
            page.get_by_test_id("filter-provider").select_option("meta")
            expect(rows).to_have_count(1)
            expect(rows.first).to_have_attribute("data-provider", "meta")
            page.get_by_test_id("filter-provider").select_option("")
            page.get_by_test_id("filter-status").select_option("4")
            expect(rows).to_have_count(1)
            page.get_by_test_id("filter-status").select_option("2")
            expect(rows).to_have_count(3)
            page.get_by_test_id("filter-status").select_option("")
            page.get_by_test_id("filter-type").select_option("whatsapp.message.received")
            expect(rows).to_have_count(3)
            page.get_by_test_id("filter-type").select_option("")
            page.get_by_test_id("filter-chat").fill("no-such-chat")
            expect(rows).to_have_count(0)
            page.get_by_test_id("filter-chat").fill("")
            expect(rows).to_have_count(4)
            check(True, "the provider, status, type and chat filters hide what they should")

            # Replay the first request: the same event again, a duplicate.
            new_row.click()
            page.get_by_test_id("replay").click()
            expect(rows).to_have_count(5)
            replayed = rows.first
            expect(replayed.get_by_test_id("outcome")).to_have_text("duplicate")
            expect(replayed.get_by_test_id("event-id")).to_have_text(event_id)
            check(True, "replay re-sends the request: a duplicate")

            # Queues: the event reached `messages` (filled in from the fanout).
            new_row.click()
            expect(page.get_by_test_id("detail-event").first).to_contain_text("messages", timeout=20_000)
            check(True, "the detail names the queue the event reached")

            html = page.content()
            leaked = [s for s in secrets if s in html]
            check(not leaked, "no URL token or secret in the page")

            shot = Path(args.screenshot)
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.get_by_test_id("row").nth(3).click()
            page.screenshot(path=str(shot))
            check(shot.stat().st_size > 10_000, f"screenshot saved to {shot}")
            browser.close()

        # "Copy as curl" (its text comes from the server on click) hands out no credential: the
        # URL token is masked as on the page; with it put back, the curl reproduces the request.
        with urllib.request.urlopen(f"{base}/_inspector/curl/1", timeout=10) as r:
            curl = r.read().decode()
        leaked = [s for s in secrets if s in curl]
        check(not leaked and "/v1/hooks/••••/" in curl, "the curl of request 1 has its URL token masked")
        curl = curl.replace("/v1/hooks/••••/", "/v1/hooks/" + by["zapi"]["token"] + "/")
        out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        check(json.loads(out.stdout).get("duplicates") == [event_id], "the curl of request 1 reproduces it")

        serve.send_signal(signal.SIGTERM)
        log = serve.communicate(timeout=20)[0]
        check("401 POST /v1/hooks/•••• meta | bad_signature" in log, "the terminal shows one line per request")
        return 0
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=20)
            except subprocess.TimeoutExpired:
                serve.kill()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"FAIL {e}")
        sys.exit(1)
