"""The CI-sized fuzz run: every target for a few seconds from its committed seeds (``make fuzz`` runs long).

The targets run in subprocesses, two at a time (the selected ones only), shallowly instrumented (our packages)
so that they start in a few seconds.  A crashing or hanging input is saved under tests/fuzz/findings/<target>/
and named in the failure with its traceback and the command that replays it.  ``FUZZ_CI_SECONDS`` changes the
budget per target (default 5), ``FUZZ_CI_SEED`` libFuzzer's seed (default 1; 0 for a random one).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .driver import Outcome, run_target
from .targets import SEP, TARGETS, agent_rpcs, server_rpcs

SECONDS = int(os.environ.get("FUZZ_CI_SECONDS") or 5)
SEED = int(os.environ.get("FUZZ_CI_SEED") or 1)  # fixed: CI fuzzes the same way every time (0: random)
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, Outcome]:
    """Fuzz the targets this session selected, two at a time; each from an empty work corpus."""
    selected = sorted({item.callspec.params["target"] for item in request.session.items
                       if item.module is request.module and hasattr(item, "callspec")
                       and "target" in item.callspec.params})
    work = tmp_path_factory.mktemp("fuzz-work")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda n: run_target(n, seconds=SECONDS, work_dir=work, jobs_dir=work, log_dir=work,
                                                input_timeout=60, max_findings=1, shallow=True, seed=SEED),
                           selected)
        return {o.target: o for o in results}


@pytest.mark.parametrize("target", list(TARGETS))
def test_no_finding(target: str, outcomes: dict[str, Outcome]) -> None:
    o = outcomes[target]
    assert not o.error, f"the {target} fuzzer did not start:\n{o.error}"
    problems = [f"{f.kind}: {f.summary}\n  input saved: {f.path}\n  log: {f.log}\n"
                f"  replay: .venv/bin/python -m tests.fuzz.run {target} --replay {f.path}\n"
                f"{f.log.read_text()[-4000:]}" for f in o.findings]
    assert not problems, "\n\n".join(problems)
    assert o.executions > 0 and o.cov > 0, f"{target}: no executions or no coverage measured ({o})"


def _seed_rpc(path: Path) -> str:
    return path.stem.split("-", 1)[0]


@pytest.mark.parametrize(("target", "table"), [("agent_handler", agent_rpcs), ("server_handler", server_rpcs)])
def test_handler_seeds_name_their_method(target: str, table) -> None:
    """A handler seed's first byte is the method's index: a proto change that moves methods must regenerate the
    seeds (tests/fuzz/make_seeds.py), and every method has one."""
    rpcs = table()
    seeds = sorted((HERE / "corpus" / target).iterdir())
    for seed in seeds:
        data = seed.read_bytes()
        index = (data[0] & 0x7F) % len(rpcs)  # bit 7: a flag (agent: the grant; server: the operator calls)
        rpc = rpcs[index]
        assert rpc.name == _seed_rpc(seed), f"{seed.name} selects {rpc.name}: regenerate the seeds"
        messages = data[1:].split(SEP) if rpc.client_streaming else [data[1:]]
        for m in messages:
            rpc.request.FromString(m)
    assert {r.name for r in rpcs} <= {_seed_rpc(s) for s in seeds}, "a method has no seed"
