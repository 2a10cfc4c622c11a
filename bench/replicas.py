"""Completed two-party envelopes per second with 1 and with 2 `signet-server` replicas on PostgreSQL, next to 1
replica on SQLite, in the same run.

Set-up (not measured), twice: a SQLite deployment, and a PostgreSQL deployment (a throwaway cluster,
:mod:`scripts.pgcluster`, fsync on) whose second replica shares the server token, the database and the state
directory.  Each deployment has its own server token and its own Alice and Bob, each with a token and a real
``signet-agent``, enrolled with ``signet enroll`` (the journeys of :mod:`bench.envelope_journeys`: create, send,
Alice signs on her token, Bob signs on his, each with a one-time code bound to the revision).

Variants alternate per round (``BENCH_ROUNDS``, default 3), each ``BENCH_ENVELOPE_SECONDS`` (default 6) with
``BENCH_ENVELOPE_CLIENTS`` (default 4) clients at once: SQLite with one replica (the baseline), PostgreSQL with
one replica, PostgreSQL with two (client i talks to replica i mod 2).  The benchmark runs all of it on one
machine, so two replicas share its cores with the agents, the tokens and PostgreSQL itself.

    python -m bench.replicas
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .common import Report, alternate
from .envelope_journeys import (
    CLIENTS,
    PIN,
    ROUNDS,
    SECONDS,
    Outbox,
    Person,
    _admin,
    _enroll,
    _register,
    _tokens,
    journey,
    journeys_per_second,
)


@dataclass
class Deployment:
    name: str
    env: Any  # scripts.processes.ServerEnv of the first replica
    servers: list[Any]  # scripts.processes.ServerProcess
    people: list[Person]
    outbox: Outbox
    extra_links: list[Any] = field(default_factory=list)


def _deploy(state: Path, name: str, store: str, tokens: dict[str, str]) -> Deployment:
    from scripts.processes import ServerProcess, server_cli, write_server_config

    settings = f'store = "{store}"' if store else ""
    env = write_server_config(state / name / "server", tokens["server"], PIN, "[approval]\nfour_eyes = false\n",
                              organisation="Signet Bench", otp_hourly_limit=1_000_000, server_settings=settings)
    p = server_cli(env, "server.main", "init", "--config", str(env.config))
    if p.returncode != 0:
        raise RuntimeError(f"signet-server init ({name}): {p.stderr.strip()}")
    servers = [ServerProcess(env, log_path=state / f"{name}-a.log")]
    people = [Person(f"Alice {name} 爱丽", f"alice-{name}", f"+86139{len(name):02d}000001", f"alice@{name}.example",
                     tokens["alice"]),
              Person(f"Bob {name} 博", f"bob-{name}", f"+86139{len(name):02d}000002", f"bob@{name}.example",
                     tokens["bob"])]
    org = _admin(env, "org", "create", f"Bench {name}")["id"]
    _admin(env, "operator-cert", "issue", "--org", org, "--login", "bench-operator", "--out",
           str(state / name / "operator"))
    outbox = Outbox(env)
    _register(env, state / name / "operator", outbox, people)
    for person in people:
        _enroll(env, outbox, person, state / name)
    return Deployment(name, env, servers, people, outbox)


def _second_replica(state: Path, d: Deployment) -> tuple[Person, Person]:
    """Start replica B of ``d`` (same token, database and state directory) and return Alice and Bob as seen
    through it (their API links to B)."""
    from agent.serverlink import ServerLink, ServerTarget
    from scripts.processes import ServerProcess, write_server_config

    b_dir = state / d.name / "server-b"
    b_dir.mkdir()
    (b_dir / "state").symlink_to(d.env.state)
    settings = d.env.config.read_text().split("[server]\n", 1)[1].split("[hsm]", 1)[0]
    store_line = next(line for line in settings.splitlines() if line.startswith("store = "))
    b_env = write_server_config(b_dir, d.env.token_label, PIN, "[approval]\nfour_eyes = false\n",
                                organisation="Signet Bench", otp_hourly_limit=1_000_000, server_settings=store_line)
    d.servers.append(ServerProcess(b_env, log_path=state / f"{d.name}-b.log"))
    via_b = []
    for p in d.people:
        tls = p.agent.state / "server"
        link = ServerLink(ServerTarget(enroll=b_env.enroll, ca_pem=(tls / "ca.pem").read_bytes(), api=b_env.api,
                                       client_cert_pem=(tls / "agent.crt").read_bytes(),
                                       client_key_pem=(tls / "agent.key").read_bytes()))
        d.extra_links.append(link)
        via_b.append(replace(p, link=link))
    return via_b[0], via_b[1]


def _journeys(d: Deployment, work: Path, pairs: list[tuple[Person, Person]]) -> Callable[[], float]:
    """``CLIENTS`` clients, client i through ``pairs[i % len(pairs)]``: completed envelopes per second."""
    import threading

    local = threading.local()
    counter = iter(range(1 << 30))
    lock = threading.Lock()

    def one(_: object) -> None:
        if not hasattr(local, "pair"):
            with lock:
                local.pair = pairs[next(counter) % len(pairs)]
        alice, bob = local.pair
        journey(alice, bob, d.outbox, work)

    def measure() -> float:
        return journeys_per_second(CLIENTS, one, None)[0]

    return measure


def run() -> None:
    from scripts.pgcluster import PgCluster

    state = Path(tempfile.mkdtemp(prefix="signet-bench-replicas-"))
    cluster = None
    deployments: list[Deployment] = []
    try:
        tokens = {n: {"server": f"bench-{n}-server", "alice": f"bench-{n}-alice", "bob": f"bench-{n}-bob"}
                  for n in ("sqlite", "pg")}
        _tokens(state, [t for ts in tokens.values() for t in ts.values()])
        cluster = PgCluster().start()  # its own directory: the postgres user must reach it
        sqlite = _deploy(state, "sqlite", "", tokens["sqlite"])
        pg = _deploy(state, "pg", cluster.url(), tokens["pg"])
        deployments = [sqlite, pg]
        work = state / "work"
        work.mkdir()
        b_alice, b_bob = _second_replica(state, pg)
        on_a = (pg.people[0], pg.people[1])
        variants = {
            "sqlite-1": _journeys(sqlite, work, [(sqlite.people[0], sqlite.people[1])]),
            "pg-1": _journeys(pg, work, [on_a]),
            "pg-2": _journeys(pg, work, [on_a, (b_alice, b_bob)]),
        }
        # warm-up: first connections and validations on every replica
        journey(*on_a, pg.outbox, work)
        journey(b_alice, b_bob, pg.outbox, work)
        journey(sqlite.people[0], sqlite.people[1], sqlite.outbox, work)
        print(f"replicas: {SECONDS:g} s per variant x {ROUNDS} rounds, {CLIENTS} clients; PostgreSQL "
              f"{cluster.url()} (fsync on); the replicas, agents, tokens and PostgreSQL share this machine",
              flush=True)
        runs = alternate(variants, ROUNDS)
        report = Report("replicas")
        base = f"1 replica, SQLite, {CLIENTS} clients"
        report.add(base, runs["sqlite-1"], "env/s")
        report.add(f"1 replica, PostgreSQL, {CLIENTS} clients", runs["pg-1"], "env/s", baseline=base)
        report.add(f"2 replicas, PostgreSQL, {CLIENTS} clients", runs["pg-2"], "env/s", baseline=base)
        report.finish()
    finally:
        for d in deployments:
            for p in d.people:
                if p.agent is not None and p.agent.alive:
                    p.agent.stop()
            for s in d.servers:
                if s.alive:
                    s.kill()
            d.outbox.close()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    run()


if __name__ == "__main__":
    main()
