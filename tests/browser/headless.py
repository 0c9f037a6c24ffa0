"""Headless Chromium for the browser tests (selenium + chromedriver), one
setup for all of them."""
import shutil
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium(prefix):
    """A headless Chromium with a fresh profile, quiet and sandbox-free (CI
    containers), using the chromium and chromedriver on PATH when present."""
    profile = tempfile.mkdtemp(prefix=prefix)
    opts = webdriver.ChromeOptions()
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary:
        opts.binary_location = binary
    driver_path = shutil.which("chromedriver")
    return webdriver.Chrome(options=opts, service=Service(driver_path) if driver_path else None)
