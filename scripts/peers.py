#!/usr/bin/env python3
"""Side-by-side load-generator efficiency on loopback.

Starts nginx (worker_processes 1) on 127.0.0.1 serving a tiny 200 response,
then runs each selected load tool with the same connection count and duration,
and reports for each: requests, RPS, generator CPU seconds (user+sys, from
/usr/bin/time), requests per generator CPU-second, peak RSS.

requests per CPU-second is the figure to compare: it holds up on a shared,
noisy machine far better than raw RPS.

Usage:
  peers.py [--conns 50] [--duration 10] [--tools wrk,hey,ab,oha,locust-fast,locust]
           [--extra 'NAME=COMMAND with {url} {conns} {duration}'] [--url URL]
An --extra command must print its total request count somewhere in its output as
`"requests": N` (JSON) or `requests=N`; the last such match counts.
Needs: apt-get install wrk hey apache2-utils nginx-light; pip install locust;
cargo install oha (optional). Tools that are missing are reported and skipped.
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

NGINX_CONF = """worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
daemon on;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}
}}
"""

LOCUSTFILE = """from locust import {cls}, task, constant
class U({cls}):
    wait_time = constant(0)
    @task
    def root(self):
        self.client.get("/")
"""


def count_wrk(out): return int(re.search(r"(\d+) requests in", out).group(1))
def count_hey(out): return sum(int(x) for x in re.findall(r"\[\d{3}\]\s+(\d+) responses", out))
def count_ab(out): return int(re.search(r"Complete requests:\s+(\d+)", out).group(1))
def count_oha(out):
    j = json.loads(out[out.index("{"): out.rindex("}") + 1])
    return sum(j["statusCodeDistribution"].values())
def count_locust(out): return int(re.findall(r"Aggregated\s+(\d+)\s", out)[0])
def count_extra(out):
    m = re.findall(r'"requests"\s*:\s*(\d+)|requests=(\d+)', out)
    if not m: raise ValueError("no request count in output")
    a, b = m[-1]
    return int(a or b)


def tools(url, c, d, tmp):
    host = url.rstrip("/")
    lf = {}
    for name, cls in (("locust-fast", "FastHttpUser"), ("locust", "HttpUser")):
        p = os.path.join(tmp, f"{name}.py")
        open(p, "w").write(LOCUSTFILE.format(cls=cls))
        lf[name] = p
    locust = lambda n: (["locust", "-f", lf[n], "--headless", "-u", str(c), "-r", str(c), "-t", f"{d}s",
                         "-H", host, "--only-summary", "--loglevel", "ERROR"], count_locust, "locust")
    return {
        "wrk": (["wrk", "-t1", f"-c{c}", f"-d{d}s", url], count_wrk, "wrk"),
        "hey": (["hey", "-z", f"{d}s", "-c", str(c), url], count_hey, "hey"),
        "ab": (["ab", "-k", "-q", "-t", str(d), "-n", "100000000", "-c", str(c), url], count_ab, "ab"),
        "oha": (["oha", "-z", f"{d}s", "-c", str(c), "--no-tui", "--output-format", "json", url], count_oha, "oha"),
        "locust-fast": locust("locust-fast"),
        "locust": locust("locust"),
    }


def measure(name, cmd, count, d):
    p = subprocess.run(["/usr/bin/time", "-f", "TIME %U %S %e %M"] + cmd, capture_output=True, text=True)
    out = p.stdout + p.stderr
    u, s, e, rss = re.findall(r"TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", out)[-1]
    cpu = float(u) + float(s)
    n = count(out)
    return dict(tool=name, requests=n, rps=round(n / d), cpu_s=round(cpu, 2),
                req_per_cpu_s=round(n / cpu) if cpu else None, wall_s=float(e), rss_mb=round(int(rss) / 1024, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--tools", default="wrk,hey,ab,oha,locust-fast,locust")
    ap.add_argument("--extra", action="append", default=[], help="NAME=COMMAND template")
    ap.add_argument("--url", help="use this target instead of starting nginx")
    ap.add_argument("--port", type=int, default=18080)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="peers-")
    nginx = None
    url = a.url
    if not url:
        conf = os.path.join(tmp, "nginx.conf")
        open(conf, "w").write(NGINX_CONF.format(d=tmp, port=a.port))
        subprocess.run(["nginx", "-c", conf], check=True)
        nginx = os.path.join(tmp, "nginx.pid")
        url = f"http://127.0.0.1:{a.port}/"
        for _ in range(50):
            try:
                urllib.request.urlopen(url, timeout=1).read(); break
            except Exception:
                time.sleep(0.1)
    try:
        table = tools(url, a.conns, a.duration, tmp)
        runs = [(n, table[n]) for n in a.tools.split(",") if n]
        for spec in a.extra:
            name, _, tpl = spec.partition("=")
            cmd = tpl.format(url=url, conns=a.conns, duration=a.duration)
            runs.append((name, (["sh", "-c", cmd], count_extra, None)))
        for name, (cmd, count, binary) in runs:
            if binary and not shutil.which(binary):
                print(json.dumps(dict(tool=name, skipped=f"{binary} not installed")), flush=True)
                continue
            try:
                print(json.dumps(measure(name, cmd, count, a.duration)), flush=True)
            except Exception as e:
                print(json.dumps(dict(tool=name, error=str(e)[:300])), flush=True)
    finally:
        if nginx and os.path.exists(nginx):
            subprocess.run(["kill", open(nginx).read().strip()])


if __name__ == "__main__":
    main()
