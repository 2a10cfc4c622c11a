"""Fault injection at every PKCS#11 call site the hsm layer uses: SoftHSM behind the faultp11 shim (tests/faultp11).

For each call site and each injected return value (CKR_DEVICE_ERROR, CKR_SESSION_HANDLE_INVALID, on every call
until the rule is removed) the layer must answer with its documented error and never a python-pkcs11 one, hold
exactly the sessions the module has open (no leak), keep or drop the login as documented, and work again within
2 s of the rule's removal.  The expected answers below are the table in tests/faultp11/README.md.

The layer runs in a child process (fault_worker.py), one per test, on a token in a SoftHSM token directory of its
own: the shim loads the same SoftHSM as this process, and two hsm Modules over one SoftHSM instance would finalise
each other's sessions; a directory with one token also keeps the child's C_Initialize quick.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hsm.module import find_module_path
from tests import faultp11

from ..conftest import ROOT, SO_PIN, USER_PIN

pytestmark = pytest.mark.hsm

DEVICE = faultp11.CKR_DEVICE_ERROR
SESSION = faultp11.CKR_SESSION_HANDLE_INVALID
RECOVERY_SECONDS = 2.0
WRONG_PIN = "97531"
# operations that work without a login (everything else raises LoginRequired once the login is gone)
NO_LOGIN = frozenset({"list_tokens", "find_token", "info", "login"})


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    # `make test` installs gcc (Makefile DEB_PACKAGES): a missing compiler is a failure, never a skip
    return faultp11.build(tmp_path_factory.mktemp("faultp11"))


class Worker:
    """The child process: ``worker(op)`` runs one hsm operation there and returns its reply (fault_worker.py)."""

    def __init__(self, shim: Path, tmp_path: Path, label: str = "fault", pin: str = USER_PIN) -> None:
        state = tmp_path / "softhsm"
        subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), label, SO_PIN, pin],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)
        self.rules = faultp11.Rules(tmp_path / "faultp11.rules")
        self.stderr_path = tmp_path / "worker.stderr"
        real_module = os.path.realpath(find_module_path())
        env = {**os.environ, **self.rules.env(real_module), "SOFTHSM2_CONF": str(state / "softhsm2.conf"),
               "PYTHONPATH": str(ROOT), "FAULT_SHIM": str(shim), "FAULT_TOKEN": label, "FAULT_PIN": pin}
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.hsm.fault_worker"], cwd=ROOT, env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        ready = self._read()
        assert ready["ok"], ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(10)
            crashed = " (SIGSEGV)" if code == -signal.SIGSEGV else ""
            raise AssertionError(f"fault worker exited with {code}{crashed}:\n{self.stderr_path.read_text()[-4000:]}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def __call__(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def ok(self, op: str, **kwargs: Any) -> Any:
        reply = self(op, **kwargs)
        assert reply["ok"], reply
        return reply["result"]

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.ok("state")
        return state

    def injected(self, function: str) -> int:
        return int(self.ok("counters", function=function)[1])

    def close(self) -> None:
        self.rules.clear()
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "exit"}\n')
            self.proc.stdin.flush()
        code = self.proc.wait(30)
        assert code == 0, f"fault worker exited with {code}:\n{self.stderr_path.read_text()[-4000:]}"


@pytest.fixture
def worker(shim, tmp_path) -> Iterator[Worker]:
    w = Worker(shim, tmp_path)
    yield w
    w.close()


def assert_no_leak(state: dict[str, Any]) -> None:
    """Every session the module has open on the token is one the pool holds (or will close again)."""
    assert sorted(state["module"]) == sorted(state["pool"] + state["unclosed"]), state


def recover(worker: Worker, op: str, *, relogin: bool) -> float:
    """Seconds from the rule's removal until ``op`` works again; ``relogin``: the login was lost, so ``op``
    first says LoginRequired and works after one login (else it works at once)."""
    worker.rules.clear()
    start = time.monotonic()
    reply = worker(op)
    if relogin:
        assert not reply["ok"] and reply["error"] == "LoginRequired", reply
        worker.ok("login")
        reply = worker(op)
    assert reply["ok"], reply
    return time.monotonic() - start


@dataclass(frozen=True)
class Site:
    """One PKCS#11 function at one call site: the operation that reaches it and what the layer answers."""

    site: str  # as in the README table
    op: str  # fault_worker operation
    function: str  # the PKCS#11 function that fails
    device: str  # hsm error for CKR_DEVICE_ERROR
    session: str  # hsm error for CKR_SESSION_HANDLE_INVALID
    prepare: str | None = None  # operation run first (e.g. close_idle, so that a session must be opened)
    device_drops_login: bool = False

    def __str__(self) -> str:
        return f"{self.op}-{self.function}"


# CKR_DEVICE_ERROR with the token still there: the operation's own failure class, login kept, retry works.
# CKR_SESSION_HANDLE_INVALID: the module lost the session, so the login is gone too: TokenRemoved, log in again.
SITES = [
    Site("listing tokens", "list_tokens", "C_GetSlotList", "HsmError", "HsmError"),
    Site("finding a token", "find_token", "C_GetSlotList", "HsmError", "HsmError"),
    Site("finding a token", "find_token", "C_GetTokenInfo", "TokenNotFound", "HsmError"),
    Site("token state", "info", "C_GetTokenInfo", "TokenRemoved", "TokenRemoved", device_drops_login=True),
    Site("opening a session", "keys", "C_OpenSession", "HsmError", "TokenRemoved", prepare="close_idle"),
    Site("login", "login", "C_Login", "HsmError", "TokenRemoved", prepare="logout"),
    Site("key lookup", "key", "C_FindObjectsInit", "HsmError", "TokenRemoved"),
    Site("key lookup", "key", "C_FindObjects", "HsmError", "TokenRemoved"),
    Site("key lookup", "key", "C_GetAttributeValue", "HsmError", "TokenRemoved"),
    Site("signing", "sign", "C_SignInit", "SigningFailed", "TokenRemoved"),
    Site("signing", "sign", "C_Sign", "SigningFailed", "TokenRemoved"),
    Site("key generation", "generate_key", "C_GenerateKeyPair", "HsmError", "TokenRemoved"),
    Site("key deletion", "delete_key", "C_DestroyObject", "HsmError", "TokenRemoved"),
    Site("certificate import", "import_certificate", "C_CreateObject", "HsmError", "TokenRemoved"),
    Site("certificate import", "import_certificate", "C_DestroyObject", "HsmError", "TokenRemoved"),
    Site("KEK generation", "generate_kek", "C_GenerateKey", "HsmError", "TokenRemoved"),
    Site("wrapping", "wrap", "C_CreateObject", "WrapError", "TokenRemoved"),
    Site("wrapping", "wrap", "C_WrapKey", "WrapError", "TokenRemoved"),
    Site("unwrapping", "unwrap", "C_UnwrapKey", "WrapError", "TokenRemoved"),
]


@pytest.mark.parametrize("rv", [DEVICE, SESSION], ids=["DEVICE_ERROR", "SESSION_HANDLE_INVALID"])
@pytest.mark.parametrize("site", SITES, ids=str)
def test_an_injected_error_gives_the_documented_answer_and_the_token_recovers(
    worker: Worker, site: Site, rv: int,
) -> None:
    if site.prepare:
        worker.ok(site.prepare)
    before = worker.state()
    injected = worker.injected(site.function)
    worker.rules.set(f"{site.function} {rv:#x} *")

    reply = worker(site.op)

    assert worker.injected(site.function) > injected, "the operation never reached the faulty function"
    assert not reply["ok"], reply
    assert reply["hsm"] and not reply["pkcs11"], reply  # no python-pkcs11 exception escapes the layer
    expected = site.device if rv == DEVICE else site.session
    assert reply["error"] == expected, reply
    drops_login = expected == "TokenRemoved" and (rv == SESSION or site.device_drops_login)
    after = worker.state()
    assert after["logged_in"] == (before["logged_in"] and not drops_login), (before, after)
    assert after["tries_left"] == before["tries_left"]  # a failing device never counts as a wrong PIN
    assert_no_leak(after)
    assert after["unclosed"] == []

    seconds = recover(worker, site.op, relogin=drops_login and site.op not in NO_LOGIN)
    assert seconds < RECOVERY_SECONDS
    assert_no_leak(worker.state())


def test_a_slot_that_does_not_answer_is_left_out_of_the_listing(worker: Worker) -> None:
    serial = worker.ok("info")
    assert serial in worker.ok("list_tokens")
    worker.rules.set(f"C_GetTokenInfo {DEVICE:#x} *")
    assert serial not in worker.ok("list_tokens")  # as if absent: a watcher reports it removed
    missing = worker("find_token")
    assert missing["error"] == "TokenNotFound" and "did not answer" in missing["message"], missing
    assert recover(worker, "list_tokens", relogin=False) < RECOVERY_SECONDS
    assert serial in worker.ok("list_tokens")
    assert worker.state()["logged_in"]  # listing never touches the pool


@pytest.mark.parametrize("rv", [DEVICE, SESSION], ids=["DEVICE_ERROR", "SESSION_HANDLE_INVALID"])
def test_logout_ends_the_login_even_when_c_logout_fails(worker: Worker, rv: int) -> None:
    worker.rules.set(f"C_Logout {rv:#x} *")
    worker.ok("logout")  # no error: the pool's state is logged out whatever C_Logout said
    state = worker.state()
    assert not state["logged_in"] and state["module"] == [] and state["pool"] == []
    worker.rules.clear()
    # every session closed ended the login in the module: a wrong PIN is refused, not waved through
    # as USER_ALREADY_LOGGED_IN
    wrong = worker("login", pin=WRONG_PIN)
    assert wrong["error"] == "PinIncorrect", wrong
    worker.ok("login")
    assert worker.ok("sign")


def test_a_session_the_module_fails_to_close_is_closed_later(worker: Worker) -> None:
    worker.ok("sign")
    worker.rules.set(f"C_CloseSession {DEVICE:#x} *")
    worker.ok("logout")
    state = worker.state()
    assert not state["logged_in"] and state["pool"] == []
    assert state["unclosed"] and sorted(state["unclosed"]) == state["module"]  # kept to be closed again
    assert worker.injected("C_CloseSession") == len(state["unclosed"])
    worker.rules.clear()
    worker.ok("login")  # opening the new anchor session closes the old ones first
    state = worker.state()
    assert state["unclosed"] == [] and state["module"] == state["pool"] and len(state["pool"]) == 1
    assert worker.ok("sign")


def test_a_session_the_module_calls_invalid_is_not_closed_again(worker: Worker) -> None:
    """CKR_SESSION_HANDLE_INVALID from C_CloseSession: the pool believes the module and forgets the session.

    The shim lies (the session stays open in SoftHSM), which shows what the pool must not do: close the handle
    again later, when a module that reuses handle numbers may have given it to a new session.
    """
    worker.ok("sign")
    held = worker.state()["pool"]
    worker.rules.set(f"C_CloseSession {SESSION:#x} *")
    worker.ok("logout")
    state = worker.state()
    assert not state["logged_in"] and state["pool"] == [] and state["unclosed"] == []
    assert state["module"] == held  # the shim's leftovers, invisible to the pool
    worker.rules.clear()
    assert worker("login", pin=WRONG_PIN)["error"] == "PinIncorrect"  # C_Logout did run: logged out
    worker.ok("login")
    assert worker.ok("sign")


def test_one_device_error_costs_one_call(worker: Worker) -> None:
    worker.rules.set(f"C_Sign {DEVICE:#x} 1")
    first = worker("sign")
    assert first["error"] == "SigningFailed" and "retry" in first["message"], first
    assert worker.ok("sign")  # the rule is still there, its one fault spent
    assert worker.injected("C_Sign") == 1
    assert worker.state()["logged_in"]


@pytest.mark.parametrize("function", ["C_Sign", "C_SignInit"])
def test_a_slow_sign_only_slows_signing(worker: Worker, function: str) -> None:
    worker.ok("sign")  # the key handle is cached: later signatures call only C_SignInit and C_Sign
    worker.rules.set(f"{function} delay_ms 300")
    slow = worker("sign")
    assert slow["ok"] and slow["seconds"] >= 0.3, slow
    lookup = worker("key")
    assert lookup["ok"] and lookup["seconds"] < 0.2, lookup
    # while one thread waits in the slow call, other operations on the same token go ahead
    both = worker.ok("concurrent", slow="sign", fast="keys")
    assert both["slow"]["ok"] and both["slow"]["seconds"] >= 0.3, both
    assert both["fast"]["ok"] and both["fast"]["seconds"] < 0.2 and both["fast_first"], both
    worker.rules.clear()
    fast = worker("sign")
    assert fast["ok"] and fast["seconds"] < 0.2, fast
    state = worker.state()
    assert state["logged_in"]
    assert_no_leak(state)
