#!/usr/bin/python3
"""Celery client of the zq benchmark: the same commands, options and output as zq-bench.

usage: client.py [--broker REDIS_URL] COMMAND [options]
  ping [--timeout S]                     control ping, then one add(1, 1) round trip
  throughput [--n N] [--ignore-result]   N add(i, i) as fast as one client can, then every result
  latency [--n N] [--warmup W]           sequential add.delay(1, 1).get()
  countdown [--n N] [--countdown S] [--gap-ms G]
  prefill --state FILE [--n N] [--countdown S]   fill the queue (no worker running)
  drain --state FILE --t0 EPOCH          wait until a prefill has been processed
Labels: --scenario --case --rep. Each command prints one JSON line:
  {"system":"celery","scenario":..,"case":..,"rep":..,"figures":{..},"detail":{..}}
Run through bench/run.sh --compare celery, which starts redis-server and the worker.
"""
import argparse
import base64
import datetime as dt
import json
import math
import os
import resource
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TAIL_MAX = 1000  # completion of a big batch is detected on its last tasks (as zq-bench does)
SAMPLES = 1000   # how many more of a big batch are checked afterwards
GET_TIMEOUT = 300


def load_tasks(broker):
    if broker:
        os.environ["ZQBENCH_REDIS_URL"] = broker
    sys.path.insert(0, HERE)
    import zqbench_tasks  # noqa: E402 (needs the URL in the environment first)
    return zqbench_tasks


def pct(s, p):
    """Nearest-rank percentile of a sorted list (the same rule as zq-bench)."""
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def dist_ms(vals):
    s = sorted(vals)
    if not s:
        return {}
    return {"min_ms": s[0] * 1e3, "p50_ms": pct(s, 50) * 1e3, "p90_ms": pct(s, 90) * 1e3,
            "p99_ms": pct(s, 99) * 1e3, "max_ms": s[-1] * 1e3,
            "mean_ms": sum(s) / len(s) * 1e3}


class Line:
    def __init__(self, a):
        self.d = {"system": "celery", "scenario": a.scenario, "case": a.case, "rep": a.rep,
                  "figures": {}, "detail": {}}
        self.load = os.getloadavg()[0]  # the machine may be shared: how busy it was

    def set(self, figures, detail):
        self.d["figures"] = figures
        self.d["detail"] = dict(detail, loadavg_1m=self.load)

    def error(self, msg):
        self.d.setdefault("error", msg)
        print("client.py: " + msg, file=sys.stderr, flush=True)

    def emit(self):
        print(json.dumps(self.d), flush=True)
        return 1 if "error" in self.d else 0


def iso_ts(s):
    if not s:
        return float("nan")
    if isinstance(s, dt.datetime):
        d = s
    else:
        d = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    if d.tzinfo is None:  # Celery stores naive UTC datetimes in date_done
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


def cmd_ping(t, a):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        try:
            if t.app.control.ping(timeout=0.5):
                v = t.add.delay(1, 1).get(timeout=max(1.0, deadline - time.time()))
                return 0 if v == 2 else 1
        except Exception:  # broker or worker not up yet: try again
            pass
        time.sleep(0.2)
    print("client.py: ping: no worker answered within %gs" % a.timeout, file=sys.stderr)
    return 1


def cmd_throughput(t, a):
    line = Line(a)
    n = a.n
    r = t.app.backend.client
    if a.ignore_result:
        r.set(t.DONE_KEY, 0)
    results = []
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    if a.ignore_result:
        for i in range(n):
            t.add_counted.delay(i, i)
    else:
        for i in range(n):
            results.append(t.add.delay(i, i))
    t_acc = time.perf_counter()
    bad = done = 0
    if a.ignore_result:
        # INCR counter polled every 5 ms (the reference method: nothing else is stored)
        deadline = time.time() + GET_TIMEOUT
        while time.time() < deadline:
            done = int(r.get(t.DONE_KEY) or 0)
            if done >= n:
                break
            time.sleep(0.005)
        if done < n:
            line.error("only %d of %d tasks done after %ds" % (done, n, GET_TIMEOUT))
    else:
        for i, ar in enumerate(results):
            try:
                if ar.get(timeout=GET_TIMEOUT) != 2 * i:
                    bad += 1
            except Exception as e:
                line.error("get #%d: %r" % (i, e))
                break
        if bad:
            line.error("%d wrong results" % bad)
    t_end = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    line.set({"e2e_per_s": n / (t_end - t0), "accept_per_s": n / (t_acc - t0),
              "client_cpu_us_per_task": cpu * 1e6 / n},
             {"n": n, "accepted_s": t_acc - t0, "total_s": t_end - t0,
              "ignore_result": int(a.ignore_result), "bad_results": bad})
    return line.emit()


def cmd_latency(t, a):
    line = Line(a)
    lat = []
    for i in range(-a.warmup, a.n):
        t1 = time.perf_counter()
        try:
            v = t.add.delay(1, 1).get(timeout=10)
        except Exception as e:
            line.error("round trip %d: %r" % (i, e))
            break
        d = time.perf_counter() - t1
        if v != 2:
            line.error("round trip %d: wrong result %r" % (i, v))
            break
        if i >= 0:
            lat.append(d)
    dd = dist_ms(lat)
    line.set({k: dd[k] for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms") if k in dd},
             {"n": len(lat), "warmup": a.warmup,
              "min_ms": dd.get("min_ms"), "mean_ms": dd.get("mean_ms")})
    return line.emit()


def cmd_countdown(t, a):
    line = Line(a)
    subs = []
    for i in range(a.n):
        ts = time.time()
        subs.append((ts, t.stamp.apply_async((i, i), countdown=a.countdown)))
        if a.gap_ms:
            time.sleep(a.gap_ms / 1000.0)
    late, late_client = [], []
    for ts, ar in subs:
        try:
            v = ar.get(timeout=60)
        except Exception as e:
            line.error("get: %r" % (e,))
            break
        late.append(v["started"] - iso_ts(v["eta"]))
        late_client.append(v["started"] - (ts + a.countdown))
    d = dist_ms(late)
    line.set({"late_p50_ms": d.get("p50_ms"), "late_p99_ms": d.get("p99_ms"),
              "late_max_ms": d.get("max_ms"),
              "early_count": sum(1 for x in late if x < 0)},
             {"n": len(late), "countdown_s": a.countdown, "gap_ms": a.gap_ms,
              "late_vs_eta": d,
              "late_vs_client_send_plus_countdown": dist_ms(late_client)})
    return line.emit()


def cmd_prefill(t, a):
    """Fill the queue fast. The figure measured later is the drain, not this, so instead of
    N apply_async calls (about 2k/s) we let Celery build ONE message, take it back off the
    queue, and push N copies with fresh ids and args through a Redis pipeline."""
    line = Line(a)
    r = t.app.backend.client
    queue = "celery"
    if r.llen(queue):
        line.error("queue %r is not empty" % queue)
        return line.emit()
    t.add.apply_async((0, 0), countdown=a.countdown or None)
    raw = r.rpop(queue)
    if raw is None:
        line.error("could not capture a template message from queue %r" % queue)
        return line.emit()
    tpl = json.loads(raw)
    body = json.loads(base64.b64decode(tpl["body"]))
    embed = body[2] if len(body) > 2 else {}
    n, tail = a.n, min(a.n, TAIL_MAX)
    every = max(1, n // SAMPLES)
    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    with open(a.state, "w") as f:
        f.write("n %d\n" % n)
        for i in range(n):
            tid = str(uuid.uuid4())
            h = dict(tpl["headers"], id=tid, root_id=tid, argsrepr="(%d, %d)" % (i, i))
            p = dict(tpl["properties"], correlation_id=tid, delivery_tag=str(uuid.uuid4()))
            b = base64.b64encode(json.dumps([[i, i], {}, embed]).encode()).decode()
            pipe.lpush(queue, json.dumps(dict(tpl, headers=h, properties=p, body=b)))
            if i >= n - tail:
                f.write("tail %d %s\n" % (i, tid))
            elif i % every == 0:
                f.write("sample %d %s\n" % (i, tid))
            if i % 10000 == 9999:
                pipe.execute()
        pipe.execute()
    t1 = time.perf_counter()
    line.set({"prefill_per_s": n / (t1 - t0)},
             {"n": n, "queued": r.llen(queue), "countdown_s": a.countdown,
              "method": "template message + redis pipeline"})
    return line.emit()


def cmd_drain(t, a):
    line = Line(a)
    tail, samples, n = [], [], 0
    with open(a.state) as f:
        for l in f:
            k, *rest = l.split()
            if k == "n":
                n = int(rest[0])
            elif k == "tail":
                tail.append((int(rest[0]), rest[1]))
            else:
                samples.append(rest[1])
    bad = failed = late = 0
    for i, tid in tail:
        try:
            if t.app.AsyncResult(tid).get(timeout=a.timeout or 3600) != 2 * i:
                bad += 1
        except Exception as e:
            line.error("waiting for %s: %r" % (tid, e))
            break
    end = time.time()
    for tid in samples:
        meta = t.app.backend.get_task_meta(tid)
        if meta.get("status") != "SUCCESS":
            failed += 1
        elif iso_ts(meta.get("date_done")) > end + 0.001:
            late += 1
    if bad or failed:
        line.error("%d tasks did not succeed, %d wrong results" % (failed, bad))
    line.set({"drain_per_s": n / (end - a.t0)},
             {"n": n, "drain_s": end - a.t0, "tail_checked": len(tail),
              "samples_checked": len(samples),
              "samples_done_after_clock_stopped": late})
    return line.emit()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["ping", "throughput", "latency", "countdown", "prefill",
                                        "drain"])
    ap.add_argument("--broker")
    ap.add_argument("--scenario", default="")
    ap.add_argument("--case", default="")
    ap.add_argument("--rep", type=int, default=0)
    ap.add_argument("--n", type=int)
    ap.add_argument("--ignore-result", action="store_true")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--countdown", type=float)
    ap.add_argument("--gap-ms", type=float, default=0.0)
    ap.add_argument("--state")
    ap.add_argument("--t0", type=float, default=0.0)
    ap.add_argument("--timeout", type=float, default=0.0)
    a = ap.parse_args()
    defaults = {"throughput": 100000, "latency": 5000, "countdown": 1000}
    if a.n is None:
        a.n = defaults.get(a.command, 1000000)
    if a.countdown is None:
        a.countdown = 1.0 if a.command == "countdown" else 0.0
    if a.command in ("prefill", "drain") and not a.state:
        ap.error("%s needs --state FILE" % a.command)
    if a.command == "ping" and not a.timeout:
        a.timeout = 10
    t = load_tasks(a.broker)
    return globals()["cmd_" + a.command](t, a)


if __name__ == "__main__":
    sys.exit(main())
