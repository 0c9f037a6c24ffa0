"""Opens /status in headless Chromium (selenium + chromedriver), checks that
the numbers update without a reload and that the thumbnail shows a picture,
and saves screenshots at desktop and phone widths.
Usage: status_page.py STATUS_URL SCREENSHOT_DIR"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from headless import chromium  # noqa: E402

url, shots = sys.argv[1], sys.argv[2]
driver = chromium("mjpeg-relay-status-")
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
