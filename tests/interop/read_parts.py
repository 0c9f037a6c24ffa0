"""Reads N parts of an MJPEG /stream with urllib and with requests, the way
Python camera clients do (boundary from Content-Type, part Content-Length),
and checks each is a whole JPEG. Usage: read_parts.py URL N"""
import sys
import urllib.request

import requests


def parts(read_line, read_exact, boundary, n):
    got = []
    line = read_line().strip()
    assert line == b"--" + boundary, line
    while len(got) < n:
        headers = {}
        while True:
            line = read_line().strip()
            if not line:
                break
            name, value = line.split(b":", 1)
            headers[name.strip().lower()] = value.strip()
        assert headers[b"content-type"] == b"image/jpeg", headers
        jpeg = read_exact(int(headers[b"content-length"]))
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", "not a whole JPEG"
        got.append(jpeg)
        assert read_line() == b"\r\n"
        assert read_line().strip() == b"--" + boundary
    return got


def boundary_of(content_type):
    assert content_type.startswith("multipart/x-mixed-replace"), content_type
    return content_type.split("boundary=", 1)[1].strip().strip('"').encode()


def with_urllib(url, n):
    with urllib.request.urlopen(url, timeout=30) as resp:
        b = boundary_of(resp.headers["Content-Type"])
        return parts(resp.readline, resp.read, b, n)


def with_requests(url, n):
    with requests.get(url, stream=True, timeout=30) as resp:
        resp.raise_for_status()
        b = boundary_of(resp.headers["Content-Type"])
        raw = resp.raw  # urllib3 decodes chunked transfer encoding
        return parts(raw.readline, lambda k: raw.read(k), b, n)


if __name__ == "__main__":
    url, n = sys.argv[1], int(sys.argv[2])
    a = with_urllib(url, n)
    b = with_requests(url, n)
    print(f"urllib {len(a)} requests {len(b)}")
