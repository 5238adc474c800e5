#!/usr/bin/env python3
"""Drives the kiosk's web page in a real headless Chromium through chromedriver (W3C WebDriver,
Python's standard library only), at a phone's size.

    kiosk-browser.py KIOSK_URL CHROMEDRIVER_URL [SCREENSHOT.png] [--attributes]

Checks: the page shows the kiosk's current frame; it fits the phone's width; clicking "7" makes
the kiosk draw a new frame, which the page shows with a caption naming digit 7. With
--attributes (a kiosk running an attribute-conditional faces model): picking glasses
"variant02" in its picker makes the kiosk draw a face with one attribute fixed, picking
"any" again un-fixes it, and a class fixed by another client shows in the page's picker. Prints one line per check and "browser: N passed, N failed"; exits 1 if
any failed.
"""
import base64
import json
import sys
import time
import urllib.request

PHONE = (390, 844)


class Driver:
    def __init__(self, url):
        self.url = url.rstrip("/")
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            f"--window-size={PHONE[0]},{PHONE[1]}",
                        ],
                        "mobileEmulation": {
                            "deviceMetrics": {"width": PHONE[0], "height": PHONE[1], "pixelRatio": 2}
                        },
                    },
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def js(self, script):
        return self.s("POST", "/execute/sync", {"script": script, "args": []})

    def quit(self):
        self.call("DELETE", f"/session/{self.session}")


def wait(what, cond, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    return None


# The frame's pixels summed in the page: tells whether the shown picture changed.
CHECKSUM = """
const img = document.getElementById('frame');
if (!img.complete || img.naturalWidth === 0) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
const d = ctx.getImageData(0, 0, c.width, c.height).data;
let sum = 0; for (let i = 0; i < d.length; i++) sum = (sum * 31 + d[i]) % 1000000007;
return [c.width, c.height, sum];
"""


def click(d, xpath):
    found = d.s("POST", "/element", {"using": "xpath", "value": xpath})
    d.s("POST", f"/element/{next(iter(found.values()))}/click", {})


def caption_with(d, predicate):
    return wait("caption", lambda: (lambda c: c if predicate(c) else None)(
        d.js("return document.getElementById('caption').textContent")))


def served_caption(kiosk):
    return json.loads(urllib.request.urlopen(kiosk + "/frame.json", timeout=10).read())["caption"]


def check_class_button(d, kiosk, before, check):
    shown0 = d.js("return shown")
    click(d, "//button[normalize-space()='7']")
    caption = caption_with(d, lambda c: "digit 7" in c)
    check("after clicking 7 the caption names digit 7", caption is not None, f"{caption!r}")
    check("the page moved to a new frame", d.js("return shown") > shown0)
    after = wait("the new frame loaded", lambda: (lambda c: c if c and c != before else None)(d.js(CHECKSUM)))
    check("the picture changed", after is not None, f"{before} -> {after}")
    served = served_caption(kiosk)
    check("the kiosk itself now shows digit 7", "digit 7" in served, served)


def check_pickers(d, kiosk, before, check):
    pickers = d.js("return [...document.querySelectorAll('select[data-attr]')].map(s => s.dataset.attr)")
    check("the page has a picker per attribute", len(pickers) == 9 and "glasses" in pickers, f"{pickers}")
    shown0 = d.js("return shown")
    click(d, "//select[@data-attr='glasses']/option[normalize-space()='variant02']")
    caption = caption_with(d, lambda c: "(1 fixed)" in c)
    check("after picking glasses variant02 one attribute is fixed", caption is not None, f"{caption!r}")
    check("the page moved to a new frame", d.js("return shown") > shown0)
    after = wait("the new frame loaded", lambda: (lambda c: c if c and c != before else None)(d.js(CHECKSUM)))
    check("the picture changed", after is not None, f"{before} -> {after}")
    served = served_caption(kiosk)
    check("the kiosk itself has it fixed", "(1 fixed)" in served, served)
    click(d, "//select[@data-attr='glasses']/option[normalize-space()='any']")
    caption = caption_with(d, lambda c: "fixed" not in c)
    check("picking any again un-fixes it", caption is not None, f"{caption!r}")
    # Fixed elsewhere (another phone, keys): the open page's pickers follow the kiosk.
    post = urllib.request.Request(kiosk + "/attributes?hair=long03", method="POST")
    urllib.request.urlopen(post, timeout=10).read()
    hair = wait("the hair picker", lambda: (lambda v: v if v == "long03" else None)(
        d.js("return document.querySelector('select[data-attr=hair]').value")))
    check("a class fixed by another client shows in the picker", hair == "long03", f"{hair!r}")
    glasses = d.js("return document.querySelector('select[data-attr=glasses]').value")
    check("the other pickers stay on any", glasses == "", f"{glasses!r}")


def main():
    kiosk, chromedriver = sys.argv[1].rstrip("/"), sys.argv[2]
    args = [a for a in sys.argv[3:] if a != "--attributes"]
    attributes = "--attributes" in sys.argv[3:]
    screenshot = args[0] if args else None
    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + name + (f" ({detail})" if detail else ""))

    d = Driver(chromedriver)
    try:
        d.s("POST", "/url", {"url": kiosk + "/"})
        before = wait("the frame", lambda: d.js(CHECKSUM))
        check("the page shows the kiosk's frame", before is not None and before[0] > 0, f"{before}")
        served = json.loads(urllib.request.urlopen(kiosk + "/frame.json", timeout=10).read())
        caption0 = d.js("return document.getElementById('caption').textContent")
        check("its caption is the kiosk's", caption0 == served["caption"], f"{caption0!r}")
        width = d.js("return [document.documentElement.scrollWidth, window.innerWidth]")
        check("it fits a phone's width", width[0] <= width[1], f"content {width[0]} px, screen {width[1]} px")
        if attributes:
            check_pickers(d, kiosk, before, check)
        else:
            check_class_button(d, kiosk, before, check)
        if screenshot:
            png = base64.b64decode(d.s("GET", "/screenshot"))
            open(screenshot, "wb").write(png)
            print(f"wrote {screenshot}")
    finally:
        d.quit()
    failed = results.count(False)
    print(f"browser: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
