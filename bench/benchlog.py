"""Reading the services' JSON logs, for the benchmark scripts (delivery.sh's report and
sse_latency.py): timestamps, log lines, and the n/p50/p95/max summary of the tables."""
import http.client
import json
import sys
from datetime import datetime


def ts_ms(s):
    """An RFC 3339 timestamp (tracing's JSON `timestamp`) as Unix milliseconds."""
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


def json_lines(path):
    """The JSON objects of a log, one per line; other lines are skipped."""
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                pass


def summary(values, digits):
    """[n, p50, p95, max] as strings with `digits` decimals (nearest rank); nan when empty."""
    v = sorted(values)
    if not v:
        return ["0", "nan", "nan", "nan"]
    q = lambda p: v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
    return [str(len(v))] + [f"{x:.{digits}f}" for x in (q(0.5), q(0.95), v[-1])]


def login(host, port, user, password):
    """Logs in to the hub's web API; returns (connection, headers with the session cookie
    and the CSRF token) for further requests."""
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.request("GET", "/api/csrf")
    r = c.getresponse()
    csrf = json.loads(r.read())["csrf"]
    cookies = [h.split(";")[0] for h in r.msg.get_all("Set-Cookie") or []]
    c.request("POST", "/api/login", body=json.dumps({"username": user, "password": password}),
              headers={"Content-Type": "application/json", "X-CSRF-Token": csrf,
                       "Cookie": "; ".join(cookies)})
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f"login as {user} failed: {r.status} {body[:200]!r}")
    cookies += [h.split(";")[0] for h in r.msg.get_all("Set-Cookie") or []]
    try:
        csrf = json.loads(body).get("csrf", csrf)
    except ValueError:
        pass
    return c, {"Cookie": "; ".join(cookies), "X-CSRF-Token": csrf}
