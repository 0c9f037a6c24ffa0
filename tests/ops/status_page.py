"""Opens /status in headless Chromium (selenium + chromedriver), checks that
the numbers update without a reload and that the thumbnail shows a picture,
and saves screenshots at desktop and phone widths.
Usage: status_page.py STATUS_URL SCREENSHOT_DIR"""
import json
import os
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

url, shots = sys.argv[1], sys.argv[2]
profile = tempfile.mkdtemp(prefix="mjpeg-relay-status-")
opts = webdriver.ChromeOptions()
for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}"]:
    opts.add_argument(flag)
binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if binary:
    opts.binary_location = binary
driver_path = shutil.which("chromedriver")
driver = webdriver.Chrome(options=opts, service=Service(driver_path) if driver_path else None)
try:
    driver.set_window_size(1100, 800)
    driver.get(url)
    text = lambda id_: driver.find_element("id", id_).text
    first = {"frames": text("frames"), "uptime": text("uptime"), "state": text("state")}
    deadline = time.time() + 30
    changed = None
    while time.time() < deadline:
        time.sleep(0.5)
        now = {"frames": text("frames"), "uptime": text("uptime"), "state": text("state")}
        if now["frames"] != first["frames"] and text("bw_in") not in ("", "–"):
            changed = now
            break
    thumb = driver.execute_script(
        "var i=document.getElementById('thumb');return {w:i.naturalWidth,h:i.naturalHeight,done:i.complete};")
    os.makedirs(shots, exist_ok=True)
    driver.save_screenshot(os.path.join(shots, "status-desktop.png"))
    driver.set_window_size(390, 844)
    time.sleep(0.5)
    overflow = driver.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
    driver.save_screenshot(os.path.join(shots, "status-phone.png"))
    print(json.dumps({"first": first, "changed": changed, "thumb": thumb, "phone_overflow": overflow}))
    assert changed, f"numbers did not update: {first}"
    assert changed["state"] == "streaming", changed
    assert thumb["w"] > 0 and thumb["h"] > 0, f"thumbnail shows no picture: {thumb}"
    assert not overflow, "the page scrolls sideways on a phone"
finally:
    driver.quit()
