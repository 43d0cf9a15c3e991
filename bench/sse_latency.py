"""Event latency as an operator sees it: camsim's send of the first frame in which the
detector finds a person -> that event's first message on the hub's live feed (SSE).

Two modes (stdlib only):
  listen HOST PORT USER PASSWORD OUT SECONDS
      log in to the hub's web API, hold `GET /api/live` open and append one JSON line
      per SSE message to OUT: {"at_ms": wall ms at receipt, "event": name, "data": {...}}.
  report DETECTIONS FRAME_LOG SSE_LOG AGENT_LOG HUB_LOG
      DETECTIONS: `vigil-agent detect --fps 0` JSON lines for the camsim's file (one per
      frame, in file order); FRAME_LOG: camsim `--frame-log` lines "send_ms index pts_ms";
      AGENT_LOG / HUB_LOG: JSON logs. Prints one line per row of the table:
      "name n p50 p95 max" (ms), first the end-to-end row, then its parts.
"""
import http.client
import json
import sys
import time

from benchlog import json_lines, login, summary, ts_ms


def listen(host, port, user, password, out, seconds):
    _, headers = login(host, port, user, password)
    live = http.client.HTTPConnection(host, int(port), timeout=30)
    live.request("GET", "/api/live", headers={"Cookie": headers["Cookie"], "Accept": "text/event-stream"})
    r = live.getresponse()
    if r.status != 200:
        sys.exit(f"sse_latency: /api/live answered {r.status}")
    deadline = time.time() + float(seconds)
    name, data = "message", []
    with open(out, "a", buffering=1) as f:
        print("listening", flush=True)
        while time.time() < deadline:
            line = r.fp.readline()
            if not line:
                break
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                try:
                    parsed = json.loads("\n".join(data))
                except ValueError:
                    parsed = None
                f.write(json.dumps({"at_ms": time.time() * 1000, "event": name, "data": parsed}) + "\n")
                name, data = "message", []


def summary_line(name, v):
    return " ".join([name] + summary(v, 0))


def report(detections, frame_log, sse_log, agent_log, hub_log):
    # Frames (file index) where a person appears after at least 3 s (30 frames) without
    # one: the start of a burst. A single missed detection inside a burst is not one.
    person = [any(d.get("label") == "person" for d in json.loads(l)["detections"]) for l in open(detections)]
    firsts = {i for i, p in enumerate(person) if p and not any(person[max(0, i - 30):i])}
    if not firsts:
        sys.exit("sse_latency: the detector finds no person in the footage")
    sends = []
    for line in open(frame_log):
        parts = line.split()
        if len(parts) == 3 and int(parts[1]) in firsts:
            sends.append(float(parts[0]))
    sends.sort()
    # First SSE message per event id.
    seen = {}
    for o in json_lines(sse_log):
        d = o.get("data") or {}
        if o.get("event") == "event" and isinstance(d, dict) and "id" in d and d["id"] not in seen:
            seen[d["id"]] = (o["at_ms"], d)
    by_arrival = sorted(seen.items(), key=lambda kv: kv[1][0])
    spooled, indexed = {}, {}
    for o in json_lines(agent_log):
        f = o.get("fields", {})
        if f.get("message") == "Event" and f.get("phase", "").lower() == "start":
            spooled[f["event"]] = ts_ms(o["timestamp"])
    for o in json_lines(hub_log):
        f = o.get("fields", {})
        if f.get("message") == "Indexed an event" and f.get("phase") == "start":
            indexed.setdefault(f["event"], ts_ms(o["timestamp"]))
    rows = {k: [] for k in ("total", "arrival", "confirm", "deliver", "sse")}
    for i, sent in enumerate(sends):
        nxt = sends[i + 1] if i + 1 < len(sends) else float("inf")
        # The first event to reach the live feed after this burst began (and before the next).
        hit = next(((eid, at, d) for eid, (at, d) in by_arrival if sent <= at < nxt), None)
        if hit is None:
            continue
        eid, at, d = hit
        rows["total"].append(at - sent)
        if eid in spooled and eid in indexed and d.get("start_utc"):
            first = ts_ms(d["start_utc"])
            rows["arrival"].append(first - sent)
            rows["confirm"].append(spooled[eid] - first)
            rows["deliver"].append(indexed[eid] - spooled[eid])
            rows["sse"].append(at - indexed[eid])
    if not rows["total"]:
        sys.exit(f"sse_latency: no event reached the live feed after any of {len(sends)} bursts")
    print(f"bursts {len(rows['total'])}")
    for k, v in rows.items():
        print(summary_line(k, v))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "listen" and len(sys.argv) == 8:
        listen(*sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "report" and len(sys.argv) == 7:
        report(*sys.argv[2:])
    else:
        sys.exit(__doc__)
