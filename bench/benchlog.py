"""Reading the services' JSON logs, for the benchmark scripts (delivery.sh's report and
sse_latency.py): timestamps, log lines, and the n/p50/p95/max summary of the tables."""
import json
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
