"""loadmatrix probe, loaded by loadmatrix's Locust driver next to the locustfile.

Locust keeps one cumulative, time-less response-time histogram per request,
so the warm-up cannot be cut out of its own statistics exactly. This module
classifies every request on the worker that made it instead: completed before
that worker got the master's end-of-warm-up message -> warm-up, otherwise
measured (also per second of the measured window). Response times are
bucketed with Locust's own `bucket_response_time`, and the data rides in
Locust's own worker reports, so exactly the reports Locust counts are counted
here. The master writes the merged result when Locust quits; loadmatrix
compares its counts with Locust's own statistics.

The probe sees every request event first: it wraps the event's `fire`, so a
locustfile listener that raises (`RescheduleTask`, `StopUser`), which stops
the listeners after it, cannot hide a request from it.

A load shape (`LoadTestShape`) makes Locust ignore the users and run time
loadmatrix sets; the master reports the shape's class in the progress file
and never starts it, and loadmatrix refuses the cell. Otherwise nothing here
changes what Locust does or reports. Defines no User class.
"""

import json
import logging
import os
import time

import gevent
from locust import __version__ as LOCUST_VERSION
from locust import events
from locust import stats as locust_stats
from locust import runners as locust_runners
from locust.runners import MasterRunner, WorkerRunner

MEASURE_MSG = "loadmatrix_measure"
# Workers report every few seconds: a second of the window is complete on the
# master only once every worker has reported past it.
REPORTED_AFTER = int(getattr(locust_runners, "WORKER_REPORT_INTERVAL", 3.0)) + 1
KINDS = ("status", "timeout", "connect", "io")


def trust_plan_ca():
    """`[tls] ca` as the trusted bundle, `[tls] insecure` as no verification,
    for both of Locust's HTTP clients. HttpUser's session ignores
    REQUESTS_CA_BUNDLE (trust_env is off), so `verify` is set on each;
    FastHttpUser verifies nothing unless told, so it is told."""
    bundle = os.environ.get("LOADMATRIX_CA_BUNDLE")
    insecure = os.environ.get("LOADMATRIX_TLS_INSECURE") == "1"
    if not bundle and not insecure:
        return
    from locust.clients import HttpSession

    plain_init = HttpSession.__init__

    def init(self, *args, **kwargs):
        plain_init(self, *args, **kwargs)
        self.verify = False if insecure else bundle

    HttpSession.__init__ = init
    try:
        import gevent.ssl
        from locust.contrib.fasthttp import FastHttpUser
    except ImportError:
        return
    if insecure:
        FastHttpUser.insecure = True
        return

    def context():
        return gevent.ssl.create_default_context(cafile=bundle)

    FastHttpUser.insecure = False
    FastHttpUser.ssl_context_factory = staticmethod(context)


trust_plan_ca()


def failure_kind(exc, response):
    names = [c.__name__ for c in type(exc).__mro__]
    low = repr(exc).lower()
    if any("Timeout" in n for n in names) or "timed out" in low:
        return "timeout"
    if (
        any(n in ("ConnectionRefusedError", "NewConnectionError") for n in names)
        or "connection refused" in low
        or "failed to establish" in low
    ):
        return "connect"
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and status >= 100 and not 200 <= status < 400:
        return "status"
    if "HTTPError" in names:
        return "status"
    return "io"


def new_entry():
    return {"n": 0, "f": 0, "k": {k: 0 for k in KINDS}, "rt": {}, "b": 0}


def record(entry, response_time, kind, length=0):
    entry["n"] += 1
    entry["b"] += length if isinstance(length, int) and length > 0 else 0
    if kind is not None:
        entry["f"] += 1
        entry["k"][kind] += 1
    elif response_time is not None:
        b = locust_stats.bucket_response_time(response_time)
        entry["rt"][b] = entry["rt"].get(b, 0) + 1


def merge_entry(dst, src):
    dst["n"] += src.get("n", 0)
    dst["f"] += src.get("f", 0)
    dst["b"] = dst.get("b", 0) + src.get("b", 0)
    for k, v in src.get("k", {}).items():
        dst["k"][k] = dst["k"].get(k, 0) + v
    for b, c in src.get("rt", {}).items():
        dst["rt"][b] = dst["rt"].get(b, 0) + c


def merge_names(dst, src):
    for method, by_name in (src or {}).items():
        for name, entry in by_name.items():
            slot = dst.setdefault(method, {})
            merge_entry(slot.setdefault(name, new_entry()), entry)


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def run_first(hook, listener):
    """Calls `listener` before every other listener of `hook`, on every fire.

    Listeners run in the order they were added and one that raises stops the
    rest, so a listener added (e.g. in an init listener) before the probe's
    could hide requests from it. Wrapping `fire` puts the probe ahead of them
    all, whenever they were added; what they do is unchanged.
    """
    fire = hook.fire

    def fire_after_probe(*args, **kwargs):
        try:
            listener(**kwargs)
        except Exception:
            logging.exception("loadmatrix probe: cannot record a request")
        return fire(*args, **kwargs)

    hook.fire = fire_after_probe


class Recorder:
    """Request events of one process: warm-up, measured, measured per second."""

    def __init__(self):
        self.measuring = False
        self.t0 = 0.0
        self.clear()

    def clear(self):
        self.warm = {}
        self.meas = {}
        self.secs = {}

    def start(self):
        if not self.measuring:
            self.t0 = time.monotonic()
            self.measuring = True

    def on_request(self, request_type="", name="", response_time=None, exception=None, **kw):
        kind = None if exception is None else failure_kind(exception, kw.get("response"))
        table = self.meas if self.measuring else self.warm
        by_name = table.setdefault(str(request_type or ""), {})
        entry = by_name.get(name)
        if entry is None:
            entry = by_name[name] = new_entry()
        length = kw.get("response_length") or 0
        record(entry, response_time, kind, length)
        if self.measuring:
            s = max(0, int(time.monotonic() - self.t0))
            row = self.secs.get(s)
            if row is None:
                row = self.secs[s] = new_entry()
            record(row, response_time, kind, length)


class WorkerProbe:
    def __init__(self, environment, runner):
        self.rec = Recorder()
        self.cpu0 = 0.0
        runner.register_message(MEASURE_MSG, self.on_measure)
        run_first(environment.events.request, self.rec.on_request)
        environment.events.report_to_master.add_listener(self.on_report)

    def on_measure(self, environment=None, msg=None, **_kw):
        if not self.rec.measuring:
            self.cpu0 = cpu_seconds()
            self.rec.start()

    def on_report(self, client_id=None, data=None, **_kw):
        rec = self.rec
        cpu = None
        if rec.measuring:
            cpu = [cpu_seconds() - self.cpu0, time.monotonic() - rec.t0]
        data["loadmatrix"] = {"warm": rec.warm, "meas": rec.meas, "secs": rec.secs, "cpu": cpu}
        rec.clear()


class MasterProbe:
    def __init__(self, environment, runner, out, progress, warmup):
        self.env = environment
        self.runner = runner
        self.out = out
        self.progress = progress
        self.warmup = warmup
        self.warm = {}
        self.meas = {}
        self.secs = {}
        self.meas_rt = {}
        self.cpu = {}
        self.unprobed = set()
        self.started = None
        self.boundary = None
        self.end = None
        self.users = []
        # Requests made on the master itself (e.g. in a test_start listener)
        # count in Locust's statistics too.
        self.local = Recorder()
        ev = environment.events
        run_first(ev.request, self.local.on_request)
        ev.worker_report.add_listener(self.on_report)
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stopping.add_listener(self.on_stopping)
        ev.quit.add_listener(self.on_quit)
        ev.worker_connect.add_listener(self.on_worker_connect)
        gevent.spawn(self.waiting_loop)

    def emit(self, line):
        try:
            with open(self.progress, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except OSError:
            pass

    def connected(self):
        c = self.runner.clients
        return len(c.ready) + len(c.spawning) + len(c.running)

    def waiting_loop(self):
        while self.started is None:
            self.emit({"event": "waiting", "connected": self.connected()})
            gevent.sleep(0.5)

    def start_measuring(self):
        self.boundary = time.monotonic()
        self.local.start()
        self.runner.send_message(MEASURE_MSG)

    def on_worker_connect(self, client_id=None, **_kw):
        # A worker joining mid-run (e.g. one that reconnected) measures too.
        if self.boundary is not None and client_id is not None:
            self.runner.send_message(MEASURE_MSG, client_id=client_id)

    def on_test_start(self, **_kw):
        if self.started is not None:
            return
        self.started = time.monotonic()
        self.emit({"event": "started", "connected": self.connected()})
        if self.warmup <= 0:
            # Before the spawn messages go out, so no request precedes it.
            self.start_measuring()
        gevent.spawn(self.run_loop)

    def run_loop(self):
        measure_at = self.started + self.warmup
        next_tick = self.started + 1.0
        while self.boundary is None and self.end is None:
            now = time.monotonic()
            if now >= measure_at:
                self.start_measuring()
                break
            if now >= next_tick:
                self.tick("warmup")
                next_tick += 1.0
            gevent.sleep(max(0.0, min(next_tick, measure_at) - now))
        k = 0
        while self.end is None:
            if k > 0:
                # At the end of each second: the master's count follows the
                # workers' messages, so a start-of-second sample lags a ramp.
                self.users.append(self.runner.user_count)
            self.tick("measure")
            k += 1
            gevent.sleep(max(0.0, self.boundary + k - time.monotonic()))

    def tick(self, phase):
        total = self.runner.stats.total
        n = sum(self.meas_rt.values())
        p50 = p95 = None
        if n:
            p50 = locust_stats.calculate_response_time_percentile(self.meas_rt, n, 0.5)
            p95 = locust_stats.calculate_response_time_percentile(self.meas_rt, n, 0.95)
        self.emit(
            {
                "event": "tick",
                "phase": phase,
                "elapsed": time.monotonic() - self.started,
                "requests": total.num_requests,
                "failures": total.num_failures,
                "users": self.runner.user_count,
                "rps": total.current_rps or 0.0,
                "p50": p50,
                "p95": p95,
                "window": self.window(),
            }
        )

    def window(self):
        """The measured seconds every worker has reported, as the cell's
        statistics will count them."""
        if self.boundary is None:
            return None
        closed = int(time.monotonic() - self.boundary) - REPORTED_AFTER
        if closed <= 0:
            return None
        rows = [self.secs.get(s) or new_entry() for s in range(closed)]
        last = rows[-1]
        n = sum(last["rt"].values())

        def pct(q):
            return locust_stats.calculate_response_time_percentile(last["rt"], n, q) if n else 0.0

        return {
            "secs": closed,
            "requests": sum(r["n"] for r in rows),
            "failures": sum(r["f"] for r in rows),
            "last": {
                "t": closed - 1,
                "requests": last["n"],
                "failures": last["f"],
                "p50_ms": pct(0.5),
                "p95_ms": pct(0.95),
            },
        }

    def on_report(self, client_id=None, data=None, **_kw):
        lm = (data or {}).get("loadmatrix")
        if lm is None:
            self.unprobed.add(str(client_id))
            return
        self.merge(lm)
        if lm.get("cpu"):
            self.cpu[str(client_id)] = lm["cpu"]

    def merge(self, lm):
        merge_names(self.warm, lm.get("warm"))
        merge_names(self.meas, lm.get("meas"))
        for by_name in (lm.get("meas") or {}).values():
            for entry in by_name.values():
                for b, c in entry.get("rt", {}).items():
                    self.meas_rt[b] = self.meas_rt.get(b, 0) + c
        for s, row in (lm.get("secs") or {}).items():
            merge_entry(self.secs.setdefault(int(s), new_entry()), row)

    def on_stopping(self, **_kw):
        if self.end is None:
            self.end = time.monotonic()

    def on_quit(self, exit_code=None, **_kw):
        if self.end is None:
            self.end = time.monotonic()
        local = self.local
        self.merge({"warm": local.warm, "meas": local.meas, "secs": local.secs})
        local.clear()
        total = self.runner.stats.total
        out = {
            "version": 1,
            "locust_version": LOCUST_VERSION,
            "started": self.started is not None,
            "measure_started": self.boundary is not None,
            "measured_secs": (self.end - self.boundary) if self.boundary is not None else 0.0,
            "warmup": self.warm,
            "measure": self.meas,
            "secs": {str(k): v for k, v in sorted(self.secs.items())},
            "users": self.users,
            "cpu": list(self.cpu.values()),
            "unprobed": sorted(self.unprobed),
            "locust_total": {"requests": total.num_requests, "failures": total.num_failures},
        }
        tmp = self.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(out, f)
        os.replace(tmp, self.out)


def refuse_shape(shape, progress):
    """Reports the locustfile's load shape, and keeps it from sending load:
    loadmatrix stops this run as soon as it reads the report."""
    cls = type(shape)
    line = {"event": "shape", "class": cls.__name__, "module": getattr(cls, "__module__", "")}
    try:
        with open(progress, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:
        pass
    # A shape whose first tick is None ends the test before any user starts.
    shape.tick = lambda: None


@events.init.add_listener
def _loadmatrix_init(environment, runner=None, **_kw):
    if isinstance(runner, WorkerRunner):
        WorkerProbe(environment, runner)
    elif isinstance(runner, MasterRunner) and os.environ.get("LOADMATRIX_PROBE_OUT"):
        shape = getattr(environment, "shape_class", None)
        if shape is not None:
            refuse_shape(shape, os.environ.get("LOADMATRIX_PROBE_PROGRESS", os.devnull))
            return
        MasterProbe(
            environment,
            runner,
            os.environ["LOADMATRIX_PROBE_OUT"],
            os.environ.get("LOADMATRIX_PROBE_PROGRESS", os.devnull),
            float(os.environ.get("LOADMATRIX_PROBE_WARMUP", "0")),
        )
