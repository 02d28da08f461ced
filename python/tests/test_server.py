"""`MockServer` itself: start, readiness, errors, stopping, the control
calls it makes and the TOML it writes."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import tryon_mock as tm
from tryon_mock._server import _parse_url_line

FULL_CONFIG: dict[str, Any] = {
    "virtual_time": True,
    "retention": 3600.0,
    "keys": ["sk-test", 'sk-"quoted"\\'],
    "workers": 4,
    "max_body_bytes": 16777216,
    "output_size": [32, 48],
    "public_url": None,  # left out: the mock's default
    "timing": {"mode": "fixed", "queued": 1.0, "processing": 2},
    "rate_limit": {"per_second": 5.0, "burst": 10},
    "credits": {"balance": 1.0, "first_garment": 0.015, "additional_garment": 0.008},
    "fail_rules": [
        {"match": {"prompt_contains": "blocked"}, "error": "Content blocked\nby the filter"},
        {"match": "all", "error": "everything fails"},
    ],
    "faults": [
        {"route": "status", "kind": {"status": {"code": 503, "retry_after": {"seconds": 1}}}, "times": 2},
        {"route": "submit", "kind": "drop_before_accept"},
        {"route": "any", "kind": {"latency": 0.0}, "times": 1},
    ],
}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_toml_round_trips_through_tomllib() -> None:
    text = tm.to_toml(FULL_CONFIG)
    expected = {k: v for k, v in FULL_CONFIG.items() if v is not None}
    assert tomllib.loads(text) == expected
    assert "[timing]" in text and "[[fail_rules]]" in text and "[[faults]]" in text


def test_toml_refuses_what_it_cannot_write() -> None:
    with pytest.raises(tm.TomlError, match=r"faults\[0\]\.times"):
        tm.to_toml({"faults": [{"times": object()}]})
    with pytest.raises(tm.TomlError, match=r"keys\[1\]: TOML has no null"):
        tm.to_toml({"keys": ["a", None]})


def test_the_mock_accepts_every_config_shape() -> None:
    with tm.MockServer(config=FULL_CONFIG) as mock:
        assert [f["route"] for f in mock.faults()] == ["status", "submit", "any"]
        assert mock.now() == 0.0  # virtual: the clock stands still


def test_config_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mock.toml"
    path.write_text('virtual_time = true\n[[faults]]\nroute = "result"\nkind = "not_json"\n')
    with tm.MockServer(config=path) as mock:
        assert mock.faults() == [{"route": "result", "kind": "not_json", "times": None}]


def test_a_bad_config_is_a_start_error_with_the_mocks_stderr() -> None:
    with pytest.raises(tm.MockStartError) as bad:
        tm.MockServer(config={"virtual_time": True, "colour": "red"}).start()
    assert "unknown field `colour`" in str(bad.value)
    assert bad.value.returncode == 2
    assert "colour" in bad.value.stderr


def test_a_missing_binary_is_a_start_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(tm.BINARY_ENV, str(tmp_path / "no-such-binary"))
    with pytest.raises(tm.MockStartError, match="TRYON_MOCK_BIN=.*not an executable"):
        tm.MockServer().start()


def test_the_binary_env_override_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "fake-mock"
    fake.write_text("#!/bin/sh\necho 'fake mock refuses' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(tm.BINARY_ENV, str(fake))
    with pytest.raises(tm.MockStartError) as bad:
        tm.MockServer().start()
    assert bad.value.returncode == 3
    assert "fake mock refuses" in str(bad.value)


def test_the_installed_binary_is_found() -> None:
    if os.environ.get(tm.BINARY_ENV):
        pytest.skip("TRYON_MOCK_BIN is set")
    assert Path(tm.find_binary()).name == "tryon-mock"


def test_a_binary_with_json_readiness_is_asked_for_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A stand-in for a mock that supports `--json`: it records its arguments
    and prints `{"url": ...}` for the real binary it runs without the flag."""
    wrapper = tmp_path / "json-mock"
    wrapper.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, signal, subprocess, sys
            open({str(tmp_path / "argv")!r}, "w").write(json.dumps(sys.argv[1:]))
            args = [a for a in sys.argv[1:] if a != "--json"]
            child = subprocess.Popen([{tm.find_binary()!r}, *args], stdout=subprocess.PIPE, text=True)
            signal.signal(signal.SIGTERM, lambda *_: child.terminate())
            print(json.dumps({{"url": child.stdout.readline().strip()}}), flush=True)
            sys.exit(child.wait())
            """
        )
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv(tm.BINARY_ENV, str(wrapper))
    with tm.MockServer(config={"virtual_time": True}) as mock:
        assert mock.advance(1) == 1.0
    assert "--json" in (tmp_path / "argv").read_text()


@pytest.mark.parametrize(
    ("line", "url"),
    [
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
        ('{"url": "http://127.0.0.1:8787/"}', "http://127.0.0.1:8787"),
    ],
)
def test_the_ready_line_is_a_url_or_json(line: str, url: str) -> None:
    assert _parse_url_line(line) == url


@pytest.mark.parametrize("line", ["listening", '{"port": 1}', "{not json"])
def test_a_ready_line_without_a_url_is_refused(line: str) -> None:
    with pytest.raises(tm.MockStartError, match="not a URL"):
        _parse_url_line(line)


def test_stops_on_exit_even_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="test crashed"):
        with tm.MockServer() as mock:
            url, pid = mock.url, mock._proc.pid  # type: ignore[union-attr]
            raise RuntimeError("test crashed")
    assert not mock.running
    assert _gone(pid)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/__mock/now", timeout=5)


def test_stops_when_garbage_collected() -> None:
    mock = tm.MockServer().start()
    proc = mock._proc
    assert proc is not None and proc.poll() is None
    del mock
    gc.collect()
    assert proc.poll() is not None


def test_stops_at_interpreter_exit() -> None:
    """A script that starts a mock and exits without stopping it."""
    script = textwrap.dedent(
        """
        import tryon_mock
        mock = tryon_mock.MockServer().start()
        print(mock._proc.pid, flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert _gone(int(out.stdout.strip()))


def test_control_errors_carry_the_mocks_message() -> None:
    with tm.MockServer(config={"virtual_time": True}) as mock:
        with pytest.raises(tm.MockControlError) as bad:
            mock.advance(-1)
        assert bad.value.status == 422
        assert bad.value.operation == "advance"
        assert "seconds" in bad.value.error
        with pytest.raises(ValueError, match="exactly one of status= or kind="):
            mock.add_fault("status")
        with pytest.raises(ValueError, match="burst"):
            mock.set_rate_limit(2.0)


def test_every_control_call_is_a_documented_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every method reaches the mock through `ROUTES`, the table `cargo xtask
    codegen` generates from the control API's document; and
    every operation there is used by some method."""
    used: list[tuple[str, str]] = []
    real_send = tm.MockServer._send

    def recording_send(self: tm.MockServer, operation: str, *args: Any, **kwargs: Any) -> Any:
        status, body = real_send(self, operation, *args, **kwargs)
        used.append((operation, tm.ROUTES[operation][1]))
        return status, body

    monkeypatch.setattr(tm.MockServer, "_send", recording_send)
    with tm.MockServer(config={"virtual_time": True}) as mock:
        mock.now()
        mock.advance(1)
        mock.journal()
        assert mock.drift() == {"count": 0, "dropped": 0, "records": []}
        mock.billing()
        mock.billed_submits("sk-test")
        mock.add_fault("status", status=502)
        mock.add_faults([{"route": "submit", "kind": "not_json", "times": 1}])
        mock.add_fault("result", kind={"latency": 0.0}, times=None)
        mock.faults()
        mock.clear_faults()
        mock.set_fail_rules([{"match": "all", "error": "x"}])
        mock.set_rate_limit(1.0, 1)
        mock.set_rate_limit(None)
        mock.set_keys(["sk-a"])
        mock.set_keys(None)
        mock.set_result_before_completion("not_found")
        mock.set_result_before_completion("status")
        placed = mock.place_history({"key": "sk-test", "status": "FAILED", "error": "x"})
        assert placed[0]["model_status"] == "FAILED"
        mock.set_history_landing(5.0, partial=True)
        mock.reset()
    operations = {op for op, _ in used}
    # Readiness uses health (or, before it exists, now).
    assert operations == set(tm.ROUTES), set(tm.ROUTES) ^ operations
    assert all(path.startswith("/__mock/") for _, path in used)


def test_billing_for_a_key_with_credits() -> None:
    with tm.MockServer(config={"virtual_time": True, "credits": {"balance": 0.5}}) as mock:
        request = urllib.request.Request(
            mock.url + "/v2/p-image-try-on",
            data=b'{"person_image":"https://e.com/p.jpg","garment_images":["https://e.com/g.jpg"]}',
            headers={"x-api-key": "sk-a", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 200
        billing = mock.billing("sk-a")
        assert billing["billed_submits"] == 1
        assert billing["billed_submits_for_key"] == 1
        assert billing["balance"] == pytest.approx(0.485)


def test_every_public_name_is_exported_where_type_checkers_see_it(tmp_path: Path) -> None:
    """`tryon_mock` exports every public name of `_server`, in a way mypy
    follows (named imports next to an `__all__` built with `*` hid them all
    from `mypy --strict`): a typed user of them passes."""
    from tryon_mock import _server

    assert set(tm.__all__) == {*_server.__all__, "ROUTES", "TomlError", "to_toml"}
    api = pytest.importorskip("mypy.api")
    user = tmp_path / "user.py"
    user.write_text(
        textwrap.dedent(
            """
            import tryon_mock as tm

            def drift_count(upstream: str) -> int:
                with tm.MockServer.proxy(upstream) as proxy:
                    drift: tm.Drift = proxy.drift()
                    records: list[tm.DriftRecord] = drift["records"]
                    return drift["count"] + len(records)

            def mode(path: str) -> tm.Mode:
                return tm.MockServer.replay(path, virtual_time=True).mode
            """
        )
    )
    out, err, status = api.run(["--strict", "--cache-dir", str(tmp_path / "cache"), str(user)])
    assert status == 0, out + err


def _dead(pid: int) -> bool:
    """Whether process ``pid`` is gone (or a zombie no one has reaped yet:
    an orphan's exit is reaped by whichever process adopted it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _dies_within(pid: int, seconds: float) -> bool:
    """Polls until ``pid`` is gone, at most ``seconds`` (a bound, not a wait
    for time to pass: it returns as soon as the process has exited)."""
    deadline = time.monotonic() + seconds
    while not _dead(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _leftover_configs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("tryon-mock-*.toml"))


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_mock_dies_with_its_python_process_and_leaves_no_config(tmp_path: Path) -> None:
    # Before: the mock kept serving under PID 1 after `kill -9` of the
    # Python process that started it, its temporary TOML left behind.
    script = textwrap.dedent(
        """
        import sys, time
        import tryon_mock
        mock = tryon_mock.MockServer(config={"virtual_time": True}).start()
        print(mock._proc.pid, flush=True)
        time.sleep(600)
        """
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        mock_pid = int(child.stdout.readline())
        assert not _dead(mock_pid)
        child.kill()  # SIGKILL: no finalizer, no atexit
        child.wait(timeout=30)
        assert _dies_within(mock_pid, 30), f"mock {mock_pid} outlived its parent"
    finally:
        if child.poll() is None:
            child.kill()
    assert _leftover_configs(tmp_path) == []


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigterm_to_a_pytest_run_stops_its_mock(tmp_path: Path) -> None:
    # What CI does when a job is cancelled.
    (tmp_path / "test_waits.py").write_text(
        textwrap.dedent(
            """
            import time
            import pytest

            @pytest.mark.tryon_mock(config={"virtual_time": True})
            def test_waits(tryon_mock):
                with open("mock.pid", "w") as f:
                    f.write(str(tryon_mock._proc.pid))
                time.sleep(600)
            """
        )
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_waits.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid_file = tmp_path / "mock.pid"
        deadline = time.monotonic() + 60
        while not pid_file.is_file() or not pid_file.read_text():
            assert run.poll() is None and time.monotonic() < deadline, "the test never started its mock"
            time.sleep(0.02)
        mock_pid = int(pid_file.read_text())
        run.terminate()
        run.wait(timeout=30)
        assert _dies_within(mock_pid, 30), f"mock {mock_pid} outlived the cancelled pytest run"
    finally:
        if run.poll() is None:
            run.kill()
    assert _leftover_configs(tmp_path) == []


def test_a_stopped_mock_starts_again() -> None:
    # Before: "MockServer.start(): already started".
    mock = tm.MockServer(config={"virtual_time": True})
    with mock:
        assert mock.advance(5) == 5.0
        first = mock.url
    with mock:
        assert mock.running
        assert mock.now() == 0.0  # a new process, fresh state
        assert mock.url.startswith("http://127.0.0.1:")
    assert first.startswith("http://127.0.0.1:")


def test_a_control_call_after_stop_says_the_mock_is_not_running() -> None:
    # Before: a bare urllib URLError (connection refused).
    with tm.MockServer() as mock:
        pass
    with pytest.raises(tm.MockError, match=r"advance: the mock at http://127\.0\.0\.1:\d+ is not running \(it was stopped\)"):
        mock.advance(1)
    with pytest.raises(tm.MockError, match="not running"):
        tm.MockServer().now()
