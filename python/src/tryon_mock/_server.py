"""``MockServer``: the standalone ``tryon-mock`` binary as a context manager,
with one method per control-API operation."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypedDict, Union

from tryon_mock._routes import ROUTES
from tryon_mock._toml import dumps as toml_dumps

__all__ = [
    "BINARY_ENV",
    "Billing",
    "Drift",
    "DriftRecord",
    "FailRule",
    "Fault",
    "JournalEntry",
    "MockControlError",
    "MockError",
    "MockServer",
    "MockStartError",
    "Mode",
    "Route",
    "find_binary",
]

#: The environment variable that names the ``tryon-mock`` binary to run,
#: before the one installed with this package.
BINARY_ENV = "TRYON_MOCK_BIN"

Route = Literal["submit", "status", "result", "run", "upload", "output", "any"]
"""A group of API endpoints a fault applies to (``any`` is all of them)."""

Mode = Literal["mock", "proxy", "replay"]
"""What a ``MockServer`` runs: the mock, a validating proxy in front of an
upstream (``proxy=``), or a recording served with no upstream (``replay=``)."""

PathArg = Union[str, "os.PathLike[str]"]
"""A filesystem path: a string or a ``pathlib.Path``."""

ConfigArg = Union[Mapping[str, Any], str, "os.PathLike[str]", None]
"""What ``MockServer(config=...)`` accepts: a mapping written as TOML, a
path to a TOML file, or ``None`` for the mock's defaults."""


class JournalEntry(TypedDict):
    """One request the mock received (``GET /__mock/request_log``)."""

    at: float
    """Arrival time on the mock clock, in seconds."""
    method: str
    """HTTP method, e.g. ``POST``."""
    path: str
    """Request path, without the query."""
    key_fingerprint: Union[str, None]
    """``fp:`` and 16 hex digits of a hash of the ``x-api-key`` sent (never
    the key itself); ``None`` when no key was sent."""
    status: Union[int, None]
    """Status answered; ``None`` when a fault dropped the connection."""


class _BillingBase(TypedDict):
    billed_submits: int


class Billing(_BillingBase, total=False):
    """Billing counters (``GET /__mock/billing``). ``billed_submits`` counts
    every billed job; the other two are present when a key was asked about
    (``balance`` only when credits are configured)."""

    billed_submits_for_key: int
    balance: float


class FailRule(TypedDict):
    """Makes matching jobs end ``FAILED`` with ``error``.

    ``match`` is ``{"seed": 7}``, ``{"prompt_contains": "text"}``,
    ``{"every_nth": 3}`` or ``"all"``."""

    match: Union[Mapping[str, Any], str]
    error: str


class _FaultBase(TypedDict):
    route: Route
    kind: Union[Mapping[str, Any], str]


class Fault(_FaultBase, total=False):
    """A fault on a route for the next ``times`` calls (``None``: every call).

    ``kind`` is ``{"status": {"code": 503, "retry_after": {"seconds": 1}}}``,
    ``{"latency": 0.2}``, ``"drop_before_accept"``, ``"drop_after_accept"``,
    ``"not_json"``, ``"truncated_body"`` or ``{"gateway": {"code": 504,
    "accepted": True}}`` (a gateway's HTML page instead of the service's
    answer; with ``accepted`` a submit is billed first)."""

    times: Union[int, None]


class DriftRecord(TypedDict):
    """One place where a proxy's upstream departed from the API's spec
    (``openapi/segmind-tryon.yaml`` of the ``tryon-api`` crate), or from the job lifecycle."""

    operation: str
    """The spec's operation id, e.g. ``get_status``."""
    method: str
    """HTTP method of the request."""
    path: str
    """The route template, ids masked: ``/v2/requests/{request_id}/status``."""
    status: int
    """The HTTP status the upstream answered; ``0`` when it gave none (the
    request was sent, then the connection broke, it timed out, or the answer
    was over the proxy's bound: the caller's connection was closed without an
    answer, and ``actual`` names the failure)."""
    pointer: str
    """A JSON pointer into the answer seen as ``{"status", "headers", "body"}``:
    ``/status``, ``/headers/retry-after``, ``/body/request_id``; ``""`` for the
    whole answer."""
    expected: str
    """What the spec (or the lifecycle) asks for there."""
    actual: str
    """What the upstream sent."""
    example: str
    """The start of the answer's body, for context."""


class Drift(TypedDict):
    """``GET /__mock/drift``: the proxy's drift records. ``count`` is how
    many were found, ``records`` the first 10 000 of them, ``dropped`` the
    rest. A plain mock answers ``{"count": 0, "dropped": 0, "records": []}``."""

    count: int
    dropped: int
    records: list[DriftRecord]


class MockError(Exception):
    """Base class of this package's errors."""


class MockStartError(MockError):
    """The mock did not start: the binary is missing, exited, or did not
    become ready in time. ``stderr`` holds what it wrote there."""

    def __init__(self, message: str, *, stderr: str = "", returncode: int | None = None) -> None:
        detail = f"{message}\n--- tryon-mock stderr ---\n{stderr.rstrip()}" if stderr.strip() else message
        super().__init__(detail)
        self.stderr = stderr
        self.returncode = returncode


class MockControlError(MockError):
    """A control-API call was refused. ``status`` is the HTTP status and
    ``error`` the mock's ``{"error": ...}`` text, which names the field."""

    def __init__(self, operation: str, status: int, error: str) -> None:
        super().__init__(f"{operation}: HTTP {status}: {error}")
        self.operation = operation
        self.status = status
        self.error = error


def find_binary() -> str:
    """Return the path of the ``tryon-mock`` binary to run.

    In order: ``$TRYON_MOCK_BIN``; the scripts directory of this interpreter's
    environment (where the wheel installs it); then ``PATH``.
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        if not os.access(override, os.X_OK):
            raise MockStartError(f"{BINARY_ENV}={override!r} is not an executable file")
        return override
    exe = "tryon-mock.exe" if sys.platform == "win32" else "tryon-mock"
    tried = []
    # The environment's scripts directory first, then the interpreter's own
    # (the same place in a virtualenv; they differ for some user installs).
    for scheme_dir in dict.fromkeys([sysconfig.get_path("scripts"), str(Path(sys.executable).parent)]):
        candidate = Path(scheme_dir) / exe
        tried.append(str(candidate))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(exe)
    if found:
        return found
    raise MockStartError(
        f"tryon-mock binary not found (tried {', '.join(tried)} and PATH); "
        f"install the tryon-mock wheel or set {BINARY_ENV}"
    )


class _Output:
    """Drains one pipe of the child on a daemon thread, so the child never
    blocks on a full pipe, keeping the last lines; hands the first line to
    whoever waits for it."""

    def __init__(self, pipe: IO[bytes], keep: int) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.first: str | None = None
        self.first_seen = threading.Event()
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def _drain(self, pipe: IO[bytes]) -> None:
        try:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if self.first is None:
                    self.first = line
                    self.first_seen.set()
                self.lines.append(line)
        except (OSError, ValueError):
            pass
        finally:
            self.closed.set()
            self.first_seen.set()
            pipe.close()

    def text(self, wait: float = 0.0) -> str:
        """The kept lines; waits up to ``wait`` s for the pipe to close first."""
        self.closed.wait(wait)
        return "\n".join(self.lines)


def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
    """Closes this end of the child's stdin pipe."""
    if proc.stdin is not None:
        try:
            proc.stdin.close()
        except OSError:
            pass


def _terminate(proc: subprocess.Popen[bytes], config_file: str | None) -> None:
    """Stops the child (SIGTERM, then SIGKILL after 5 s) and removes the
    temporary config. Runs once: from ``stop()``, from garbage collection or
    at interpreter exit (``weakref.finalize``)."""
    try:
        _close_stdin(proc)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    finally:
        if config_file is not None:
            try:
                os.unlink(config_file)
            except OSError:
                pass


_NO_BODY = object()

# Control calls go to the mock on loopback: never through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MockServer:
    """The ``tryon-mock`` binary on a free loopback port, and its control API.

    >>> with MockServer(config={"virtual_time": True}) as mock:  # doctest: +SKIP
    ...     mock.advance(3)
    ...     mock.url
    3.0
    'http://127.0.0.1:40123'

    ``config`` is a mapping (written as TOML to a temporary file; see the mock's
    README for the keys: ``virtual_time``, ``timing``, ``fail_rules``,
    ``faults``, ``rate_limit``, ``credits``, ``keys``, ``retention``, ...), a
    path to a TOML file, or ``None`` for the defaults (real time, 20 ms queued
    + 80 ms processing). Use ``virtual_time = true`` so tests move the clock
    with ``advance()`` instead of sleeping.

    The same binary also runs as a validating proxy in front of an upstream
    (``MockServer.proxy(url, record=DIR)``: drift in ``drift()``, every
    exchange recorded into ``DIR``) or serves such a recording with no
    upstream and no key (``MockServer.replay(DIR, virtual_time=True)``);
    ``mode`` says which.

    The process is stopped by ``stop()``, on leaving the ``with`` block (also
    when the block raised), when the object is garbage collected, and at
    interpreter exit.
    """

    def __init__(
        self,
        config: ConfigArg = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 30.0,
        request_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
        virtual_time: bool = False,
        proxy: str | None = None,
        proxy_upload: str | None = None,
        keep_output_urls: bool = False,
        record: PathArg | None = None,
        record_limit: int | None = None,
        replay: PathArg | None = None,
        replay_speed: float | None = None,
    ) -> None:
        """Prepare a server; ``start()`` (or ``with``) runs it.

        ``binary`` overrides ``find_binary()``; ``port=0`` picks a free port;
        ``start_timeout`` bounds the wait for readiness; ``request_timeout``
        bounds each control call; ``env`` adds environment variables (e.g.
        ``{"RUST_LOG": "debug"}``).

        ``virtual_time=True`` (``--virtual-time``) stops the clock until
        ``advance()``, for the mock (as the config's ``virtual_time``) and
        for a replay. The other keywords are the binary's flags of the same
        names; ``proxy()`` and ``replay()`` are the readable way to give them:
        ``proxy`` (an upstream URL), ``proxy_upload``, ``keep_output_urls``,
        ``record`` (a directory), ``record_limit`` (bytes), ``replay`` (a
        recording directory) and ``replay_speed`` (recorded seconds per real
        second). A proxy and a replay take no ``config``. What only the
        binary can judge (``record`` without ``proxy``, a directory that
        already holds a recording, a recording it cannot read) raises
        ``MockStartError`` from ``start()`` with the binary's message.
        """
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port: {port!r} given, an integer in 0..=65535 needed")
        if start_timeout <= 0:
            raise ValueError(f"start_timeout: {start_timeout!r} given, must be > 0")
        if config is not None and (proxy is not None or replay is not None):
            raise ValueError("config: a proxy or a replay runs no mock scenario; give no config")
        if proxy is None:
            for name, value in (("proxy_upload", proxy_upload), ("keep_output_urls", keep_output_urls)):
                if value:
                    raise ValueError(f"{name}: only with proxy= (a validating proxy's option)")
        elif virtual_time:
            raise ValueError("virtual_time: a proxy forwards in real time (the upstream's clock)")
        if replay is None and replay_speed is not None:
            raise ValueError("replay_speed: only with replay= (the speed a recording is played at)")
        if record_limit is not None and (isinstance(record_limit, bool) or not isinstance(record_limit, int) or record_limit < 1):
            raise ValueError(f"record_limit: {record_limit!r} given, a number of bytes >= 1 needed")
        self._mode: Mode = "replay" if replay is not None else "proxy" if proxy is not None else "mock"
        self._mode_args = _mode_args(
            virtual_time=virtual_time,
            proxy=proxy,
            proxy_upload=proxy_upload,
            keep_output_urls=keep_output_urls,
            record=record,
            record_limit=record_limit,
            replay=replay,
            replay_speed=replay_speed,
        )
        self._config = config
        self._binary = os.fspath(binary) if binary is not None else None
        self._host = host
        self._port = port
        self._start_timeout = start_timeout
        self._request_timeout = request_timeout
        self._env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: _Output | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes], str | None], MockServer] | None = None
        self._url: str | None = None

    @classmethod
    def proxy(
        cls,
        upstream: str,
        *,
        record: PathArg | None = None,
        record_limit: int | None = None,
        keep_output_urls: bool = False,
        upload: str | None = None,
        **options: Any,
    ) -> MockServer:
        """A validating proxy in front of ``upstream`` (``--proxy``): the
        same routes as the mock, each call forwarded with the caller's own
        ``x-api-key``, each answer checked against the API's spec; the
        departures are in ``drift()``.

        ``record`` (``--record DIR``) writes every exchange into that
        directory (created; it must not hold a recording yet), the key never
        stored; ``record_limit`` bounds the bytes written (1 GiB by default).
        ``keep_output_urls`` leaves ``output`` URLs pointing at the upstream;
        ``upload`` is the upload host (``--proxy-upload``). ``options`` are
        the constructor's others (``port``, ``start_timeout``, ``env``, ...).
        """
        return cls(
            proxy=upstream,
            record=record,
            record_limit=record_limit,
            keep_output_urls=keep_output_urls,
            proxy_upload=upload,
            **options,
        )

    @classmethod
    def replay(
        cls,
        path: PathArg,
        *,
        speed: float | None = None,
        virtual_time: bool = False,
        **options: Any,
    ) -> MockServer:
        """Serve the recording in ``path`` with no upstream and no key
        (``--replay``): a submit that matches a recorded one gets the recorded
        job (same ``request_id``, statuses at the recorded times, same result
        and output bytes); one that matches nothing gets HTTP 409 naming the
        nearest recorded request and each field that differs.

        ``speed`` (``--replay-speed``, 0.001 to 1000) plays the recorded
        timing faster; ``virtual_time`` stops the clock until ``advance()``.
        ``options`` are the constructor's others.
        """
        return cls(replay=path, replay_speed=speed, virtual_time=virtual_time, **options)

    @property
    def mode(self) -> Mode:
        """``"mock"``, ``"proxy"`` or ``"replay"``: what this server runs."""
        return self._mode

    # ---- lifecycle ---------------------------------------------------------

    def __enter__(self) -> MockServer:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> MockServer:
        """Run the binary and wait until it serves; return ``self``.

        A stopped server can be started again: a new process (on a new port
        when ``port=0``; the mock's state starts afresh).

        The mock is tied to this process: its stdin is a pipe this process
        holds (``--exit-with-parent``), so when this process dies, however
        (``kill -9``, a cancelled CI job), the mock stops too. A ``config``
        mapping's temporary TOML file is removed as soon as the mock has
        read it.

        Raises ``MockStartError`` (with the mock's stderr) if the binary is
        missing, exits, or is not ready within ``start_timeout``.
        """
        if self.running:
            raise MockError(f"MockServer.start(): already running at {self._url}")
        if self._proc is not None:
            self.stop()
            self._proc = None
            self._finalizer = None
            self._url = None
        binary = self._binary or find_binary()
        config_file = self._config_path()
        deadline = time.monotonic() + self._start_timeout
        try:
            # Ask for the JSON readiness line and the parent watch; a binary
            # that predates a flag refuses it at once, and is started again
            # without it.
            flags = ["--json", "--exit-with-parent"]
            while not self._launch(binary, config_file, deadline, flags):
                pass
            self._wait_ready(deadline)
        except BaseException:
            self.stop()
            if self._finalizer is None and config_file is not None and isinstance(self._config, Mapping):
                _terminate_config_only(config_file)
            raise
        finally:
            # The mock has read its config (or never will): a temporary one
            # goes now, so that nothing is left behind whatever happens next.
            if config_file is not None and isinstance(self._config, Mapping):
                _terminate_config_only(config_file)
        return self

    def _config_path(self) -> str | None:
        if self._config is None:
            return None
        if isinstance(self._config, Mapping):
            text = toml_dumps(self._config)
            fd, path = tempfile.mkstemp(prefix="tryon-mock-", suffix=".toml")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            return path
        return os.fspath(self._config)

    def _launch(self, binary: str, config_file: str | None, deadline: float, flags: list[str]) -> bool:
        """Start the child with the optional ``flags`` and read its first
        stdout line. Returns False, with the flag removed from ``flags``, if
        it refused one of them (an older binary); raises on any other
        failure."""
        args = [binary, "--host", self._host, "--port", str(self._port)]
        if config_file is not None:
            args += ["--config", config_file]
        args += self._mode_args
        args += flags
        env = {**os.environ, **self._env}
        try:
            proc = subprocess.Popen(
                args,
                # A pipe only this process holds: when it dies, the mock's
                # stdin ends and (with --exit-with-parent) the mock stops.
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            raise MockStartError(f"cannot run {binary}: {e}") from e
        assert proc.stdout is not None and proc.stderr is not None
        temp_config = config_file if isinstance(self._config, Mapping) else None
        self._proc = proc
        self._finalizer = weakref.finalize(self, _terminate, proc, temp_config)
        self._stderr = _Output(proc.stderr, keep=500)
        stdout = _Output(proc.stdout, keep=50)
        if not stdout.first_seen.wait(max(0.0, deadline - time.monotonic())):
            raise MockStartError(
                f"tryon-mock did not print its URL within {self._start_timeout} s",
                stderr=self.logs(),
            )
        if stdout.first is None:
            returncode = proc.wait(timeout=5)
            stderr = self._stderr.text(wait=2.0)
            refused = next((f for f in flags if f'unknown argument "{f}"' in stderr), None)
            if returncode != 0 and refused is not None:
                # An older binary without this flag: forget this child (it
                # has exited; the config file stays for the retry).
                self._finalizer.detach()
                _close_stdin(proc)
                self._proc = None
                self._finalizer = None
                flags.remove(refused)
                return False
            raise MockStartError(
                f"tryon-mock exited with status {returncode} before it was ready "
                f"(command: {' '.join(args)})",
                stderr=stderr,
                returncode=returncode,
            )
        self._url = _parse_url_line(stdout.first)
        return True

    def _wait_ready(self, deadline: float) -> None:
        """``GET /__mock/health`` until it answers 200; a mock without that
        route (404) is ready when ``GET /__mock/now`` answers 200."""
        pause = 0.01
        while True:
            try:
                status, _ = self._send("getHealth")
                if status == 200:
                    return
                if status == 404 and self._send("getNow")[0] == 200:
                    return
                last = f"HTTP {status}"
            except OSError as e:
                last = str(e)
            if self._proc is not None and self._proc.poll() is not None:
                raise MockStartError(
                    f"tryon-mock exited with status {self._proc.returncode} before it was ready",
                    stderr=self.logs(wait=2.0),
                    returncode=self._proc.returncode,
                )
            if time.monotonic() >= deadline:
                raise MockStartError(
                    f"tryon-mock at {self._url} not ready within {self._start_timeout} s ({last})",
                    stderr=self.logs(),
                )
            time.sleep(pause)  # bounded: only until the listener answers
            pause = min(pause * 2, 0.2)

    def stop(self) -> None:
        """Stop the process (SIGTERM, SIGKILL after 5 s). Safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The process's exit status once it has ended (``0`` after a clean
        ``stop()``; ``6`` when a proxy's recording lost exchanges), else
        ``None``."""
        return None if self._proc is None else self._proc.poll()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``; give it to a client
        as its API base (the Segmind SDK wants ``base_url=mock.url + "/v1"``)."""
        if self._url is None:
            raise MockError("MockServer.url: not started")
        return self._url

    @property
    def port(self) -> int:
        """The TCP port the mock listens on."""
        port = urllib.parse.urlsplit(self.url).port
        if port is None:
            raise MockError(f"MockServer.port: no port in {self.url}")
        return port

    def logs(self, wait: float = 0.0) -> str:
        """The last 500 lines the mock wrote on stderr (one per request)."""
        return self._stderr.text(wait) if self._stderr is not None else ""

    # ---- control API -------------------------------------------------------

    def now(self) -> float:
        """Seconds on the mock clock (``GET /__mock/now``)."""
        return float(self._control("getNow")["now"])

    def advance(self, seconds: float) -> float:
        """Move the mock clock forward; return the new time
        (``POST /__mock/advance``). Jobs move through their stages and expire
        as the clock passes their deadlines; on a replay, recorded jobs move
        through their recorded statuses. A proxy has no clock of its own
        (``MockControlError``, HTTP 404)."""
        return float(self._control("advance", {"seconds": seconds})["now"])

    def reset(self) -> None:
        """Forget jobs, the request log, billing and uploads, and restore the
        configured faults (``POST /__mock/reset``). The clock keeps its time."""
        self._control("reset")

    def journal(self) -> list[JournalEntry]:
        """Every request the mock received, oldest first (keys as
        fingerprints): the mock's request log (``GET /__mock/request_log``)."""
        entries: list[JournalEntry] = self._control("getRequestLog")
        return entries

    def drift(self) -> Drift:
        """Drift records (``GET /__mock/drift``): where the upstream of a
        proxy (``MockServer.proxy(url)``) departed from the API's spec, as
        ``{"count", "dropped", "records"}``. A plain mock has none; a replay
        has no such route (``MockControlError``, HTTP 404)."""
        drift: Drift = self._control("getDrift")
        return drift

    def billing(self, key: str | None = None) -> Billing:
        """Billing counters; with ``key``, also that key's count (and balance
        when credits are configured)."""
        query = None if key is None else {"key": key}
        billing: Billing = self._control("getBilling", query=query)
        return billing

    def billed_submits(self, key: str | None = None) -> int:
        """How many jobs were billed: all of them, or those of ``key``."""
        b = self.billing(key)
        return int(b["billed_submits"] if key is None else b.get("billed_submits_for_key", 0))

    def add_fault(
        self,
        route: Route = "any",
        *,
        status: int | None = None,
        retry_after: int | Mapping[str, int] | None = None,
        kind: Mapping[str, Any] | str | None = None,
        times: int | None = 1,
    ) -> int:
        """Inject a fault into the next ``times`` calls on ``route``
        (``times=None``: every call until cleared). Return how many faults
        are now active (``POST /__mock/faults``).

        Either ``status`` (answer that code, e.g. 429 or 503, optionally with
        ``retry_after`` seconds or ``{"http_date": s}``) or a raw ``kind``
        (``"drop_before_accept"``, ``{"latency": 0.2}``, ...; see ``Fault``).
        """
        if (status is None) == (kind is None):
            raise ValueError("add_fault: give exactly one of status= or kind=")
        if retry_after is not None and status is None:
            raise ValueError("add_fault: retry_after= only goes with status=")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
            raise ValueError(f"times: {times!r} given, a count >= 0 or None needed")
        if status is not None:
            ra: Mapping[str, int] | None
            ra = {"seconds": retry_after} if isinstance(retry_after, int) else retry_after
            kind = {"status": {"code": status, "retry_after": ra}}
        fault: Fault = {"route": route, "kind": kind, "times": times}  # type: ignore[typeddict-item]
        return int(self._control("addFaults", fault)["faults"])

    def add_faults(self, faults: Sequence[Fault]) -> int:
        """Add several faults as written (``Fault`` dicts); return how many
        are now active."""
        return int(self._control("addFaults", list(faults))["faults"])

    def faults(self) -> list[Fault]:
        """The faults still active (``GET /__mock/faults``)."""
        faults: list[Fault] = self._control("listFaults")
        return faults

    def clear_faults(self) -> None:
        """Remove every active fault (``DELETE /__mock/faults``)."""
        self._control("clearFaults")

    def set_fail_rules(self, rules: Sequence[FailRule]) -> None:
        """Replace the failure rules (``PUT /__mock/fail_rules``); ``[]``
        clears them. They apply to jobs submitted afterwards."""
        self._control("setFailRules", list(rules))

    def set_rate_limit(self, per_second: float | None, burst: int | None = None) -> None:
        """A token bucket per API key: ``burst`` requests at once, refilled
        at ``per_second`` on the mock clock; ``set_rate_limit(None)`` removes
        it (``PUT /__mock/rate_limit``)."""
        if per_second is None:
            self._control("setRateLimit", None)
            return
        if burst is None:
            raise ValueError("burst: needed with per_second (the bucket size, >= 1)")
        self._control("setRateLimit", {"per_second": per_second, "burst": burst})

    def set_result_before_completion(self, answer: str) -> None:
        """What the result URL answers before a job is final
        (``PUT /__mock/result_before_completion``): ``"status"`` (the
        default: 200 with the current status), ``"not_found"``,
        ``"accepted"`` or ``"no_status"``."""
        self._control("setResultBeforeCompletion", answer)

    def set_keys(self, keys: Sequence[str] | None) -> None:
        """Accept only these API keys (others get 401); ``None`` accepts any
        non-empty key (``PUT /__mock/keys``)."""
        self._control("setKeys", None if keys is None else list(keys))

    def place_history(self, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Place rows in a key's request history (``POST /__mock/history``):
        each a mapping with ``key`` and any of ``request_id``,
        ``model_name``, ``status`` (``"COMPLETED"`` by default,
        ``"PENDING"``, ``"FAILED"``), ``credits_deduction``,
        ``request_body``, ``error``, ``age`` and ``lands_in`` (seconds), or
        ``created_at`` (RFC 3339) instead of ``age``.
        Nothing is billed. Returns the rows as the history lists them."""
        body: Any = dict(rows) if isinstance(rows, Mapping) else [dict(r) for r in rows]
        return list(self._control("placeHistory", body)["placed"])

    def set_history_landing(self, delay: float, partial: bool = False) -> None:
        """A request's history row lands ``delay`` seconds (mock clock)
        after its submit; before that it is absent, or listed with nulls
        when ``partial`` (``PUT /__mock/history_landing``)."""
        self._control("setHistoryLanding", {"delay": delay, "partial": partial})

    # ---- transport ---------------------------------------------------------

    def _control(self, operation: str, body: Any = _NO_BODY, *, query: Mapping[str, str] | None = None) -> Any:
        if not self.running:
            raise MockError(self._not_running(operation))
        try:
            status, answer = self._send(operation, body, query=query)
        except OSError as e:
            if not self.running:
                raise MockError(self._not_running(operation)) from e
            raise
        if not 200 <= status < 300:
            error = answer.get("error") if isinstance(answer, dict) else None
            raise MockControlError(operation, status, str(error if error is not None else answer))
        return answer

    def _not_running(self, operation: str) -> str:
        """Why a control call cannot be made: the process is not there."""
        if self._proc is None:
            return f"MockServer: {operation}: the mock is not running (call start(), or use `with`)"
        code = self._proc.returncode
        why = "it was stopped" if code in (0, -15) else f"it exited with status {code}"
        last = self.logs().splitlines()[-3:]
        tail = ("; its last stderr lines: " + " | ".join(last)) if last and code not in (0, -15) else ""
        return f"MockServer: {operation}: the mock at {self._url} is not running ({why}){tail}"

    def _send(self, operation: str, body: Any = _NO_BODY, *, query: Mapping[str, str] | None = None) -> tuple[int, Any]:
        """One control call, named by its operation id in the control-API
        document (``ROUTES``). Returns the status and the parsed JSON body."""
        method, path = ROUTES[operation]
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        data = None if body is _NO_BODY else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        try:
            with _OPENER.open(request, timeout=self._request_timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return status, parsed


def _mode_args(
    *,
    virtual_time: bool,
    proxy: str | None,
    proxy_upload: str | None,
    keep_output_urls: bool,
    record: PathArg | None,
    record_limit: int | None,
    replay: PathArg | None,
    replay_speed: float | None,
) -> list[str]:
    """The binary's flags for the constructor's keywords of the same names."""
    args: list[str] = []
    if virtual_time:
        args.append("--virtual-time")
    for flag, value in (("--proxy", proxy), ("--proxy-upload", proxy_upload), ("--record", record), ("--replay", replay)):
        if value is not None:
            args += [flag, os.fspath(value)]
    if keep_output_urls:
        args.append("--keep-output-urls")
    if record_limit is not None:
        args += ["--record-limit", str(record_limit)]
    if replay_speed is not None:
        args += ["--replay-speed", repr(float(replay_speed))]
    return args


def _terminate_config_only(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _parse_url_line(line: str) -> str:
    """The base URL from the mock's first stdout line: a JSON object with
    ``url`` (``--json``) or the URL itself."""
    text = line.strip()
    url: Any = text
    if text.startswith("{"):
        try:
            url = json.loads(text).get("url")
        except (ValueError, AttributeError):
            url = None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MockStartError(f"tryon-mock's first line is not a URL: {line!r}")
    return url.rstrip("/")
