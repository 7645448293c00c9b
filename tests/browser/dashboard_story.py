"""The dashboard in real headless Chromium, driven by Playwright.

Run by the Rust end-to-end test `browser::the_dashboard_in_a_real_browser`
with one argument: a JSON file naming the dashboard's URL, slipctl and the
operators' certificates, the gate file that holds the deploy on one host,
the release to roll back to, the vendored axe-core and the artifact
directory. Any failed assertion exits non-zero and fails that test; the
screenshots of each page in both languages go to the artifact directory.
"""

import csv
import io
import json
import os
import re
import subprocess
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 90_000

# Text nodes of an Arabic page with Latin words outside the data a page
# shows (names, ids, log lines in <bdi>, commands in <code>, <time>).
UNTRANSLATED_JS = """() => {
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walk.nextNode()) {
    const node = walk.currentNode;
    if (!/[A-Za-z]{2,}/.test(node.textContent)) continue;
    if (node.parentElement.closest('bdi, code, time, script, style, [lang="en"]')) continue;
    out.push(node.textContent.trim());
  }
  return out;
}"""

NO_SCROLL_JS = "() => document.documentElement.scrollWidth <= window.innerWidth"


def login_link(cfg, role):
    op = cfg["operators"][role]
    out = subprocess.run(
        [cfg["slipctl"], "--endpoint", cfg["endpoint"], "--ca", cfg["ca"], "--cert", op["cert"],
         "--key", op["key"], "dashboard", "login", "--url", cfg["base"]],
        check=True, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    link = out.stdout.strip()
    assert link.startswith(cfg["base"] + "/login/"), link
    return link


def shot(page, cfg, name):
    path = os.path.join(cfg["artifacts"], name + ".png")
    page.screenshot(path=path, full_page=True)
    print("screenshot:", path, flush=True)


def axe(page, cfg, where):
    page.add_script_tag(path=cfg["axe"])
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})")
    serious = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, f"axe on {where}: {serious}"


def finished(page):
    page.wait_for_selector("body[data-finished=true]", timeout=TIMEOUT_MS)


def log_sequences(page):
    return page.eval_on_selector_all("#log li", "els => els.map(e => Number(e.dataset.seq))")


def all_hosts_succeeded(page, hosts):
    rows = page.locator("#hosts tbody tr")
    assert rows.count() == hosts, rows.count()
    assert page.locator("#hosts tbody .s-succeeded").count() == hosts
    values = page.eval_on_selector_all("#hosts progress", "els => els.map(e => e.value)")
    assert values == [100] * hosts, values


def confirm_question(page, cfg, release_shown=None):
    question = page.locator("#question").inner_text()
    assert cfg["app"] in question and cfg["env"] in question, question
    assert re.search(r"\b%d\b" % cfg["hosts"], question), question
    if release_shown:
        assert release_shown in question, question
    return question


def stream_ids(page, deployment):
    text = page.request.get(f"/deployments/{deployment}/events").text()
    return [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]


def deploy_and_watch(page, cfg):
    """Deploys through the form; drops the event stream mid-deploy."""
    page.click(f'a[href="/deploy?app={cfg["app"]}&env={cfg["env"]}"]')
    page.fill("#git_ref", "main")
    page.fill("#message", "from the browser")
    page.click("button[type=submit]:not(header button)")
    confirm_question(page, cfg)
    shot(page, cfg, "deploy-confirm-en")
    page.click("form.confirm button[type=submit]")
    page.wait_for_url(re.compile(r"/deployments/"))
    deployment = page.url.rsplit("/", 1)[1]
    # The hook holds on one host: the page shows its line live.
    page.wait_for_function(
        "() => [...document.querySelectorAll('#log li')].some(li => li.textContent.includes('holding'))",
        timeout=TIMEOUT_MS)
    before = log_sequences(page)
    page.evaluate("() => window.slipwayLive.drop()")
    open(cfg["gate"], "w").close()
    finished(page)
    seqs = log_sequences(page)
    assert seqs[:len(before)] == before
    assert seqs == list(range(1, len(seqs) + 1)), f"gap or repeat: {seqs}"
    assert seqs == stream_ids(page, deployment), "every recorded event shown once"
    all_hosts_succeeded(page, cfg["hosts"])
    assert page.locator(".summary progress").evaluate("e => e.value") == 100
    return deployment


def history_and_csv(page, cfg):
    page.goto("/history")
    page.fill('input[name="app"]', cfg["app"])
    page.select_option('select[name="status"]', "succeeded")
    page.select_option('select[name="kind"]', "deploy")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r"status=succeeded"))
    rows = page.locator("table.history tbody tr").count()
    assert rows >= 2, rows
    with page.expect_download() as info:
        page.click('a[href*="format=csv"]')
    path = os.path.join(cfg["artifacts"], "history.csv")
    info.value.save_as(path)
    with open(path, newline="") as f:
        records = list(csv.DictReader(f))
    assert len(records) == rows, (len(records), rows)
    for r in records:
        assert (r["app"], r["status"], r["kind"]) == (cfg["app"], "succeeded", "deploy"), r
    return rows


def roll_back(page, cfg):
    page.goto("/")
    page.click(f'a[href="/rollback?app={cfg["app"]}&env={cfg["env"]}"]')
    page.select_option("#release", cfg["rollback_to"])
    page.click("form button[type=submit]:not(header button)")
    confirm_question(page, cfg, cfg["rollback_to"])
    shot(page, cfg, "rollback-confirm-en")
    page.click("form.confirm button[type=submit]")
    page.wait_for_url(re.compile(r"/deployments/"))
    finished(page)
    all_hosts_succeeded(page, cfg["hosts"])
    # The page of a deployment that had ended when it was rendered is
    # whole at once (no live stream to wait for).
    page.reload()
    finished(page)
    all_hosts_succeeded(page, cfg["hosts"])
    return page.url.rsplit("/", 1)[1]


def viewer_story(browser, cfg, deployment):
    context = browser.new_context(ignore_https_errors=True, base_url=cfg["base"])
    page = context.new_page()
    page.goto(login_link(cfg, "viewer"))
    page.wait_for_url(cfg["base"] + "/")
    assert page.locator('a[href^="/deploy?"], a[href^="/rollback?"]').count() == 0
    assert page.locator("main button, main form").count() == 0
    page.goto(f"/deployments/{deployment}")
    assert page.locator("form.cancel").count() == 0
    before = page.request.get("/history/export?format=json").json()
    csrf = page.get_attribute('header input[name="csrf"]', "value")
    forged = page.request.post("/rollback/confirm", form={
        "csrf": csrf, "app": cfg["app"], "env": cfg["env"], "release": cfg["rollback_to"]})
    assert forged.status == 403, forged.status
    after = page.request.get("/history/export?format=json").json()
    assert len(after) == len(before), "a forged POST changed nothing"
    context.close()


def certificate_login(browser, cfg):
    """Logs in with the operator certificate the browser holds."""
    plain = browser.new_context(ignore_https_errors=True, base_url=cfg["base"])
    page = plain.new_page()
    answer = page.goto("/login/certificate")
    assert answer.status == 401, answer.status
    assert "presented no certificate" in page.content()
    shot(page, cfg, "login-no-certificate-en")
    plain.close()
    op = cfg["operators"]["viewer"]
    held = browser.new_context(
        ignore_https_errors=True, base_url=cfg["base"],
        client_certificates=[{"origin": cfg["base"], "certPath": op["cert"], "keyPath": op["key"]}])
    page = held.new_page()
    page.goto("/")
    assert page.locator('a[href="/login/certificate"]').count() == 1
    shot(page, cfg, "login-en")
    page.click('a[href="/login/certificate"]')
    page.wait_for_url(cfg["base"] + "/")
    user = page.locator("header form.user").inner_text()
    assert "viewer-op" in user, user
    held.close()


def layout_and_language(browser, cfg, state, deployment):
    pages = {"overview": "/", "deployment": f"/deployments/{deployment}", "history": "/history",
             "rollbacks": "/rollbacks", "hosts": "/hosts",
             "release": f"/releases/{cfg['app']}/{cfg['rollback_to']}",
             "source": f"/sources/{cfg['app']}", "host": "/hosts/web-1"}
    for lang in ("en", "ar"):
        # The dashboard's CSP refuses inline scripts; axe-core is injected
        # by the test only.
        context = browser.new_context(ignore_https_errors=True, base_url=cfg["base"],
                                      storage_state=state, bypass_csp=True)
        page = context.new_page()
        page.goto(f"/lang/{lang}")
        for name, path in pages.items():
            page.goto(path)
            assert page.get_attribute("html", "lang") == lang
            assert page.get_attribute("html", "dir") == ("rtl" if lang == "ar" else "ltr")
            if name in ("overview", "deployment", "history"):
                axe(page, cfg, f"{name} ({lang})")
            if lang == "ar" and name in ("overview", "deployment"):
                latin = page.evaluate(UNTRANSLATED_JS)
                assert not latin, f"untranslated on {name}: {latin}"
            shot(page, cfg, f"{name}-{lang}")
        context.close()
        mobile = browser.new_context(ignore_https_errors=True, base_url=cfg["base"],
                                     storage_state=state, viewport={"width": 360, "height": 740})
        page = mobile.new_page()
        page.goto(f"/lang/{lang}")
        for name in ("overview", "deployment", "history", "hosts"):
            page.goto(pages[name])
            assert page.evaluate(NO_SCROLL_JS), f"{name} ({lang}) scrolls sideways at 360 px"
            shot(page, cfg, f"{name}-{lang}-360px")
        mobile.close()


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    assert os.path.exists(CHROMIUM), "chromium is not installed (apt-get install chromium)"
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(ignore_https_errors=True, base_url=cfg["base"])
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        link = login_link(cfg, "deployer")
        page.goto(link)
        page.wait_for_url(cfg["base"] + "/")
        again = browser.new_context(ignore_https_errors=True).new_page()
        assert again.goto(link).status == 401, "a login link works once"
        shot(page, cfg, "overview-before-en")
        results["deployment"] = deploy_and_watch(page, cfg)
        results["history_rows"] = history_and_csv(page, cfg)
        results["rollback"] = roll_back(page, cfg)
        refused = page.request.post("/deploy/confirm", form={
            "app": cfg["app"], "env": cfg["env"], "release": cfg["rollback_to"]})
        assert refused.status == 403, "a POST without the CSRF token is refused"
        viewer_story(browser, cfg, results["deployment"])
        certificate_login(browser, cfg)
        results["certificate_login"] = True
        layout_and_language(browser, cfg, context.storage_state(), results["deployment"])
        browser.close()
    with open(cfg["result"], "w") as f:
        json.dump(results, f)
    print("browser story passed:", json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
