"""Times image posts against a running chat-server: per image, an upload URL, the PUT
of the photo, the image message, the listing, and the first download of the image and
of its thumbnail (when the server lists one). Prints p50/p99 of each step and of the
whole, and the server's CPU per image (from /proc, with SERVER_PID).

    python3 scripts/bench/media.py <base url> <admin token> <photo.jpg> <count> [server pid]
"""
import http.client
import json
import os
import sys
import time
import urllib.parse

base, token, photo_path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pid = int(sys.argv[5]) if len(sys.argv) > 5 else None
photo = open(photo_path, "rb").read()
host = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(host.hostname, host.port, timeout=60)


def call(method, url, body=None, headers=None):
    parsed = urllib.parse.urlparse(url)
    target = parsed.path + ("?" + parsed.query if parsed.query else "")
    headers = dict(headers or {})
    if parsed.hostname and (parsed.hostname, parsed.port) != (host.hostname, host.port):
        other = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        other.request(method, target, body=body, headers=headers)
        answer = other.getresponse()
        data = answer.read()
        other.close()
        return answer.status, data
    conn.request(method, target, body=body, headers=headers)
    answer = conn.getresponse()
    return answer.status, answer.read()


def api(method, path, payload=None):
    headers = {"Authorization": "Bearer " + token}
    body = None
    if payload is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(payload)
    status, data = call(method, base + path, body, headers)
    if status != 200:
        raise SystemExit(f"{method} {path}: {status} {data[:200]!r}")
    return json.loads(data)


def cpu_seconds():
    if pid is None:
        return None
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


request = int(time.time()) % 1_000_000 + 5_000_000
api("PUT", f"/api/requests/{request}", {"client_id": 7})
thread = api("POST", f"/api/requests/{request}/chat/open")["threadId"]
steps = {name: [] for name in ["upload_url", "put", "post", "list", "download", "thumbnail", "total"]}
cpu_before = cpu_seconds()
for _ in range(count):
    started = time.perf_counter()
    t = time.perf_counter()
    ticket = api("POST", f"/api/chat/threads/{thread}/media", {"contentType": "image/jpeg"})
    steps["upload_url"].append(time.perf_counter() - t)
    t = time.perf_counter()
    status, data = call(ticket["method"], ticket["uploadUrl"], photo, ticket["headers"])
    if status != 200:
        raise SystemExit(f"upload: {status} {data[:200]!r}")
    steps["put"].append(time.perf_counter() - t)
    t = time.perf_counter()
    api("POST", f"/api/chat/threads/{thread}/messages", {"type": "image", "mediaPath": ticket["mediaPath"]})
    steps["post"].append(time.perf_counter() - t)
    t = time.perf_counter()
    newest = api("GET", f"/api/chat/threads/{thread}/messages?limit=1")["messages"][-1]
    steps["list"].append(time.perf_counter() - t)
    t = time.perf_counter()
    status, image = call("GET", newest["media_url"])
    if status != 200 or len(image) < 1000:
        raise SystemExit(f"download: {status}")
    steps["download"].append(time.perf_counter() - t)
    if newest.get("thumb_url"):
        t = time.perf_counter()
        status, thumb = call("GET", newest["thumb_url"])
        if status != 200:
            raise SystemExit(f"thumbnail: {status}")
        steps["thumbnail"].append(time.perf_counter() - t)
    steps["total"].append(time.perf_counter() - started)
cpu_after = cpu_seconds()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] * 1000


print(f"{count} images of {len(photo)} bytes")
for name, values in steps.items():
    if values:
        print(f"  {name:11s} p50 {pct(values, 0.5):8.1f} ms   p99 {pct(values, 0.99):8.1f} ms")
if cpu_before is not None:
    print(f"  server CPU per image: {(cpu_after - cpu_before) / count * 1000:.1f} ms")
