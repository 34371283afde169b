"""gunicorn settings for the steplens web process: `gunicorn -c config/gunicorn.conf.py config.wsgi`.

Django reads its own settings in config/settings.py; only the server's shape is set here, from
GUNICORN_* variables (see .env.example). Measured on 2 cores in benchmarks/load.py.
"""

from __future__ import annotations

import gc
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# The worker shape (issue 16, measured on 2 cores with benchmarks/side_by_side.py, 10 clients;
# docs/benchmarks.md, "The eighth session's runs"): `sync` workers, 2 per core, one request at a
# time each. Every request is its own connection, which only an idle worker accepts from the one
# shared socket: the clients queue in the kernel's accept queue, first come first served, and no
# worker holds a client while another idles. Against `gthread` 3 x 4 (threads overlapping their
# PostgreSQL waits, connections kept alive) it served as many saves and pages with a p95 a fifth
# to a third lower: several threads of one process take turns at the interpreter's lock, and a
# kept-alive connection stays on one worker however busy. A sync worker needs a buffering proxy
# in front (nginx's defaults: it reads a slow client's upload and download, the worker only
# talks to it), as gunicorn's documentation says; docs/deployment.md. GUNICORN_WORKER_CLASS=
# gthread (with GUNICORN_THREADS, default then 4) serves slow clients without one.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS") or "sync"
_sync = worker_class == "sync"
workers = int(
    os.environ.get("GUNICORN_WORKERS")
    or (2 * multiprocessing.cpu_count() if _sync else multiprocessing.cpu_count() + 1)
)
threads = int(os.environ.get("GUNICORN_THREADS") or (1 if _sync else 4))
# gthread only (a sync worker closes every connection after its response): kept-alive
# connections and the workers. A connection stays on the worker that
# accepted it, so 10 kept-alive clients over 3 workers rarely split 4/3/3 and the busiest
# worker's clients set the p95. So every `keepalive_requests`-th request of a connection is
# answered "Connection: close" (nginx's `keepalive_requests`; 0: never) and the client opens a
# new one, which the worker least busy at that moment accepts first from the one shared socket.
# Measured with benchmarks/side_by_side.py (docs/benchmarks.md): the shared socket with
# connections renewed every 10 requests served more saves with a lower p95 than SO_REUSEPORT
# (the kernel hashes each connection to a worker by its addresses, whatever the workers' load),
# with or without renewal. GUNICORN_REUSE_PORT=1 gives each worker its own SO_REUSEPORT socket.
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "0") == "1"
keepalive_requests = int(os.environ.get("GUNICORN_KEEPALIVE_REQUESTS") or 10)
# Load the application once in the master (faster start, shared memory pages).
preload_app = True
# A stuck request (a pathological page) is killed rather than holding a worker forever.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 60)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so that a slow leak never grows without bound.
max_requests = 5000
max_requests_jitter = 500
# Behind a TLS proxy: trust its X-Forwarded-* headers only from these addresses.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def when_ready(server: object) -> None:
    """In the master, after `preload_app` loaded Django and before any worker forks: move every
    object made so far (Django, the apps, the URL and template machinery: some 110,000) into
    the garbage collector's permanent generation (`gc.freeze`). A worker's full collection then
    scans its requests' objects only: measured on 2 cores, a full collection of the loaded
    application took ~200 ms with the interpreter's lock held (every thread of the worker
    waits), and nothing after a freeze. Workers forked later (max_requests) inherit it.
    GUNICORN_GC_FREEZE=0 leaves the collector as it is."""
    if os.environ.get("GUNICORN_GC_FREEZE", "1") != "0":
        gc.collect()
        gc.freeze()


def pre_request(worker: object, req: object) -> None:
    """Close every `keepalive_requests`-th request's connection after its response (gunicorn's
    request counts the requests of its connection in `req_number`; `must_close` makes the
    response say "Connection: close" and the worker close the socket after it). The first
    line is gunicorn's own default hook, which this one replaces."""
    worker.log.debug("%s %s", req.method, req.path)  # type: ignore[attr-defined]
    if keepalive_requests > 0 and req.req_number % keepalive_requests == 0:  # type: ignore[attr-defined]
        req.must_close = True  # type: ignore[attr-defined]
