"""Opens a page in headless Chromium (selenium + chromedriver) and waits
until both the <img src=/stream> and the WebSocket canvas have shown a
changing picture. Usage: chromium_view.py URL_OF_VIEW_PAGE MIN_CHANGES"""
import json
import sys
import os
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from headless import chromium  # noqa: E402

url, need = sys.argv[1], int(sys.argv[2])
driver = chromium("mjpeg-relay-chromium-")
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
