"""Opens a page in headless Chromium (selenium + chromedriver) and waits
until both the <img src=/stream> and the WebSocket canvas have shown a
changing picture. Usage: chromium_view.py URL_OF_VIEW_PAGE MIN_CHANGES"""
import json
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

url, need = sys.argv[1], int(sys.argv[2])
profile = tempfile.mkdtemp(prefix="mjpeg-relay-chromium-")
opts = webdriver.ChromeOptions()
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}"]:
    opts.add_argument(flag)
import shutil
binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if binary:
    opts.binary_location = binary
driver_path = shutil.which("chromedriver")
driver = webdriver.Chrome(options=opts, service=Service(driver_path) if driver_path else None)
try:
    driver.get(url)
    deadline = time.time() + 60
    stats = None
    while time.time() < deadline:
        stats = driver.execute_script("return window.viewerStats")
        if stats and stats["img"]["changes"] >= need and stats["ws"]["frames"] >= need:
            break
        time.sleep(0.2)
    print(json.dumps(stats))
    assert stats and stats["img"]["changes"] >= need, f"<img> did not change enough: {stats}"
    assert stats["ws"]["frames"] >= need, f"WebSocket canvas did not draw enough: {stats}"
finally:
    driver.quit()
