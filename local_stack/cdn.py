"""nginx with `proxy_cache` in front of the raster API: the local stand-in for CloudFront (a DEVELOPMENT TOOL).

The deployed API sits behind a shared cache, so whether a response may be served to another caller is part of its
correctness. Running the same kind of cache locally (and in the tests) shows what a user of the CDN sees: a second
identical tile never reaches the API, an error or a caller's own answer is never shared. The cache obeys the rules
CloudFront is given:
- key: scheme, host, path and the full query string, the normalised `Accept-Encoding` (which is also what the API is
  sent, so compressed and plain bodies never mix), `Origin` (CORS headers depend on it) and `Authorization` (an
  authenticated caller's entries are never shared with anyone else);
- TTL: only what the API's `Cache-Control` says, `s-maxage` over `max-age` (nginx reads `s-maxage` first since
  1.7.8); `private`, `no-store`, `no-cache` and responses without a TTL are not stored; only GET and HEAD are cached;
- the client's `Host` is passed on, with `X-Forwarded-Host`/`X-Forwarded-Proto`; `X-Accel-*` headers from the
  origin are ignored, as CloudFront knows none of them.

nginx runs as whoever starts it, in one process (`master_process off`: no switch to another user, so every file it
writes stays in its own directory, which may be private) with `daemon off`, so `local_stack.processes` stops it
like any other child. Every response carries `X-Cache-Status` (HIT, MISS, EXPIRED, ...; BYPASS when the request
could not be cached at all, e.g. a POST).
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from local_stack.aws_world import free_port
from local_stack.processes import serving

NGINX = "/usr/sbin/nginx"
HOST = "127.0.0.1"
CACHE_STATUS_HEADER = "X-Cache-Status"

CONFIG = """\
daemon off;
master_process off;
pid {state}/nginx.pid;
# Error lines quote the request line, query string (and so any access_token) included: only critical ones are
# written, and responses are never buffered to temporary files (whose warning is the common such line).
error_log {logs}/nginx-error.log crit;

events {{
    worker_connections 1024;
}}

http {{
    # No query strings in this log: a dataset URL may be pre-signed. The API's own access log has the redacted query.
    log_format cdn escape=json '{{"time":"$time_iso8601","method":"$request_method","path":"$uri",'
        '"status":$status,"cache":"$upstream_cache_status","bytes":$body_bytes_sent,'
        '"request_time":$request_time,"upstream_time":"$upstream_response_time"}}';
    access_log {logs}/nginx-access.log cdn;
    server_tokens off;

    # Debian's build points these at /var/lib/nginx; this nginx writes only below its own directory.
    client_body_temp_path {state}/tmp/client_body;
    proxy_temp_path {state}/tmp/proxy;
    fastcgi_temp_path {state}/tmp/fastcgi;
    uwsgi_temp_path {state}/tmp/uwsgi;
    scgi_temp_path {state}/tmp/scgi;

    proxy_cache_path {state}/cache levels=1:2 keys_zone=cdn:10m max_size=1g inactive=1d use_temp_path=off;

    # CloudFront's normalisation: gzip and brotli are the only encodings a cached body may have.
    map $http_accept_encoding $cdn_accept_encoding {{
        default "";
        "~*(\\bbr\\b.*\\bgzip\\b|\\bgzip\\b.*\\bbr\\b)" "br,gzip";
        "~*\\bbr\\b" "br";
        "~*\\bgzip\\b" "gzip";
    }}

    # A request nginx did not look up at all (a POST) has no cache status of its own.
    map $upstream_cache_status $cdn_cache_status {{
        "" "BYPASS";
        default $upstream_cache_status;
    }}

    upstream api {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen {host}:{port};
        # API Gateway's payload limit: a larger GeoJSON body would be refused there too.
        client_max_body_size 10m;

        location / {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Accept-Encoding $cdn_accept_encoding;
            # CloudFront's policy neither keys on `Accept` nor forwards it: the API answers its default media type,
            # so an `Accept: text/html` request cannot store HTML that JSON clients of the same URL then receive.
            proxy_set_header Accept "";
            proxy_max_temp_file_size 0;

            proxy_cache cdn;
            proxy_cache_methods GET HEAD;
            # Newlines cannot occur in a header value, so no two requests' parts can run together into one key.
            proxy_cache_key "$scheme://$host$request_uri\\nae=$cdn_accept_encoding\\norigin=$http_origin\\nauth=$http_authorization";
            # Concurrent misses of one key wait for the first answer, as CloudFront collapses them.
            proxy_cache_lock on;
            # `Vary` names Accept-Encoding and Origin, which are in the key already (normalised); nginx would split
            # entries on the client's raw headers instead, unlike CloudFront.
            proxy_ignore_headers Vary X-Accel-Expires X-Accel-Redirect X-Accel-Limit-Rate X-Accel-Buffering
                X-Accel-Charset;

            add_header {status_header} $cdn_cache_status always;
        }}
    }}
}}
"""


def nginx_missing() -> str | None:
    """Why the cache cannot run here (None when it can)."""
    if not Path(NGINX).is_file():
        return f"{NGINX} not found (Debian's nginx package; scripts/bootstrap.sh installs it)"
    return None


def render_config(upstream: str, port: int, state: Path, logs: Path) -> str:
    """nginx's configuration: `upstream` is the API's base URL (`http://127.0.0.1:PORT`)."""
    parts = urlsplit(upstream)
    if parts.scheme != "http" or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"the cache's upstream must be an http origin such as http://127.0.0.1:8001: {upstream!r}")
    return CONFIG.format(
        upstream=parts.netloc,
        host=HOST,
        port=port,
        state=state,
        logs=logs,
        status_header=CACHE_STATUS_HEADER,
    )


@dataclass(frozen=True)
class CacheEntry:
    """One stored response as nginx keeps it: its key and the times nginx itself will act on."""

    key: str
    stored_at: int  # epoch seconds
    valid_until: int  # served as a HIT while nginx's clock (whole seconds) is not past this

    @property
    def ttl(self) -> int:
        return self.valid_until - self.stored_at


# `ngx_http_file_cache_header_t` of nginx 1.22 on a 64-bit little-endian machine: version, valid_sec, updating_sec,
# error_sec, last_modified, date (8 bytes each), crc32, valid_msec, header_start, ...; then "\nKEY: <key>\n".
_HEADER = struct.Struct("<Qqqqqq4xHH")
_CACHE_VERSION = 5


def read_entry(path: Path) -> CacheEntry:
    data = path.read_bytes()
    version, valid_sec, _, _, _, date, _, header_start = _HEADER.unpack_from(data)
    if version != _CACHE_VERSION:
        raise ValueError(f"{path}: nginx cache file version {version}, this reader knows {_CACHE_VERSION}")
    start = data.index(b"\nKEY: ") + len(b"\nKEY: ")
    return CacheEntry(key=data[start : header_start - 1].decode("latin-1"), stored_at=date, valid_until=valid_sec)


@dataclass(frozen=True)
class Cdn:
    """A running cache: `url` is what callers use; `access_log` has one JSON line per request with its cache status."""

    url: str
    access_log: Path
    error_log: Path
    state: Path

    def entries(self) -> list[CacheEntry]:
        """What the cache holds now, read from its files (its temporary files have no entry yet)."""
        cache = self.state / "cache"
        return [read_entry(path) for path in sorted(cache.rglob("*")) if path.is_file() and "." not in path.name]

    def entry_for(self, request_uri: str) -> CacheEntry | None:
        """The stored entry of a request to `request_uri` (`/path?query` as sent), if any, whatever its headers."""
        prefix = f"http://{HOST}{request_uri}\n"
        return next((e for e in self.entries() if e.key.startswith(prefix)), None)


@contextmanager
def nginx_cache(upstream: str, state: Path, logs: Path | None = None, port: int | None = None) -> Iterator[Cdn]:
    """Run nginx on `127.0.0.1:port` (a free one by default) in front of `upstream` until the context exits.

    `state` holds the configuration, the cache and nginx's temporary files; it is emptied first, so no earlier run's
    entries are served. Logs go to `logs` (default: `state`). Returns once a request through it reached the API.
    """
    reason = nginx_missing()
    if reason:
        raise RuntimeError(reason)
    logs = logs or state
    if state.exists():
        shutil.rmtree(state)
    # Private: the cache's keys hold callers' `Authorization` values.
    state.mkdir(parents=True, mode=0o700)
    (state / "tmp").mkdir(mode=0o700)
    logs.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = state / "nginx.conf"
    config.write_text(render_config(upstream, port, state, logs))
    cdn = Cdn(f"http://{HOST}:{port}", logs / "nginx-access.log", logs / "nginx-error.log", state)
    # `-e` before the configuration is read: Debian's default error log is under /var/log.
    argv = [NGINX, "-p", str(state), "-c", str(config), "-e", str(cdn.error_log)]
    with ExitStack() as stack:
        try:
            env = {"PATH": "/usr/sbin:/usr/bin:/bin"}
            stack.enter_context(serving(argv, env, logs / "nginx.out", f"{cdn.url}/healthz", timeout=30))
        except RuntimeError as exc:
            raise RuntimeError(f"nginx did not come up: {exc}{_tail(cdn.error_log)}") from None
        yield cdn


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return ":\n" + "\n".join(text.splitlines()[-lines:]) if text else ""
