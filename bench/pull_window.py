"""Pulling a recorded window through the hub, as an investigator does (stdlib only).

  pull_window.py HOST PORT USER PASSWORD AGENT CAMERA FROM_MS TO_MS TIMEOUT

Logs in to the hub's web API, files a pull (`POST /api/recordings/requests`), polls
`GET /api/recordings/requests` until the request is `complete`, then fetches every stored
piece's media URL (what the page's player loads). Prints one JSON line:
{"request_s": seconds from the POST to `complete`, "playable_s": seconds from the POST to
the window's first piece fetched by the client (as soon as the hub stores it), "all_s": to the last piece's last byte,
"pieces": n, "bytes": total media bytes, "clip_ids": the stored pieces}.
"""
import json
import sys
import time

from benchlog import login


def main(host, port, user, password, agent, camera, from_ms, to_ms, timeout):
    c, headers = login(host, port, user, password)
    to_rfc = lambda ms: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + ".%03dZ" % (ms % 1000)
    body = {"kind": "pull", "agent_id": agent, "camera_id": camera, "from": to_rfc(int(from_ms)),
            "to": to_rfc(int(to_ms)), "case_number": "BENCH-1", "reason": "benchmark pull"}
    t0 = time.monotonic()
    c.request("POST", "/api/recordings/requests", body=json.dumps(body),
              headers=dict(headers, **{"Content-Type": "application/json"}))
    r = c.getresponse()
    answer = r.read()
    if r.status != 200:
        sys.exit(f"pull_window: the pull was refused: {r.status} {answer[:300]!r}")
    rid = json.loads(answer)["id"]
    deadline = t0 + float(timeout)
    req, first, first_id = None, None, None

    def fetch(p):
        c.request("GET", p["url"], headers=headers)
        r = c.getresponse()
        data = r.read()
        if r.status != 200 or len(data) == 0:
            sys.exit(f"pull_window: {p['url']} answered {r.status} with {len(data)} bytes")
        return len(data)

    while time.monotonic() < deadline:
        c.request("GET", "/api/recordings/requests", headers=headers)
        r = c.getresponse()
        reqs = json.loads(r.read())["requests"]
        req = next((q for q in reqs if q["id"] == rid), None)
        # The player starts on the window's first piece as soon as it is stored.
        stored = sorted(req["stored"] if req else [], key=lambda p: p["start_ms"])
        if first is None and stored and stored[0]["start_ms"] <= int(from_ms) + 1:
            fetch(stored[0])
            first, first_id = time.monotonic(), stored[0]["clip_id"]
        if req and req["status"] == "complete":
            break
        time.sleep(0.1)
    else:
        sys.exit(f"pull_window: not complete after {timeout} s: {json.dumps(req)[:500]}")
    t_done = time.monotonic()
    total = 0
    for p in sorted(req["stored"], key=lambda p: p["start_ms"]):
        total += fetch(p)
        if first is None:
            first, first_id = time.monotonic(), p["clip_id"]
    print(json.dumps({"request_s": t_done - t0, "playable_s": first - t0,
                      "all_s": time.monotonic() - t0, "pieces": len(req["stored"]), "bytes": total,
                      "clip_ids": [p["clip_id"] for p in req["stored"]]}))


if __name__ == "__main__":
    if len(sys.argv) != 10:
        sys.exit(__doc__)
    main(*sys.argv[1:])
