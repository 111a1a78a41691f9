"""The README's screenshot of the admin's partition page, taken by headless Chromium.

    NEED_CHROMIUM=1 bash -c 'source scripts/setup.sh' && .venv/bin/python scripts/screenshot.py

Starts the stack (API, one worker per partition) on a fresh database, keeps a moderate load
going through the API (wrk), logs a superuser into the admin with Chromium (Debian's
chromium and chromium-driver, driven by Selenium), and saves docs/partitions.png.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHOT_DB = "racefree_bench_shot"


def main() -> None:
    from benchmarks.run import _setup_django

    _setup_django("redis", database=SHOT_DB)
    from django.conf import settings
    from django.contrib.auth.models import User

    from benchmarks.web.measure import LOAD_SCRIPT, _bench_user, _free_port
    from quotas.services import quota_create
    from workers.supervisor import (
        Supervisor,
        child_environment,
        partition_worker_specs,
        wait_for_http,
        wait_for_workers,
        web_spec,
    )

    User.objects.create_superuser("ops", "ops@example.com", "screenshot-only-password")
    user, token = _bench_user()
    quota = quota_create(limit=10**12, owner=user)
    port = _free_port()
    stack = Supervisor(
        [web_spec(port), *partition_worker_specs(range(settings.WRITE_PARTITIONS))],
        log_dir=ROOT / "var" / "log" / "screenshot",
        env=child_environment(ALLOWED_HOSTS="127.0.0.1,localhost", LOG_LEVEL="WARNING"),
    )
    stack.start()
    base = f"http://127.0.0.1:{port}"
    load = None
    try:
        wait_for_http(f"{base}/healthz", timeout=120)
        wait_for_workers({f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)}, timeout=120)
        env = {**os.environ, "BENCH_TOKEN": token, "BENCH_BODY": "{}", "BENCH_RATE": "150"}
        load = subprocess.Popen(
            [
                "wrk",
                "-t1",
                "-c4",
                "-d60s",
                "-s",
                str(LOAD_SCRIPT),
                f"{base}/api/quotas/{quota.pk}/consume/",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(8)  # a few drains, statuses published
        _shoot(base, ROOT / "docs" / "partitions.png")
    finally:
        if load is not None:
            load.terminate()
        stack.stop()
    print("docs/partitions.png written")


def _shoot(base: str, path: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,720",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        driver.get(f"{base}/admin/login/?next=/admin/writes/writerequest/partitions/")
        driver.find_element(By.NAME, "username").send_keys("ops")
        driver.find_element(By.NAME, "password").send_keys("screenshot-only-password")
        driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        time.sleep(3)  # one of the page's own reloads
        assert "Request log partitions" in driver.title, driver.title
        driver.save_screenshot(str(path))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
