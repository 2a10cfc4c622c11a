"""Keyword search latency: the blind index (server.search) next to a plaintext SQLite FTS5 index of the same data.

``python -m bench.search_index [--contracts N] [--queries Q] [--repeat R] [--dir DIR]`` builds N synthetic contracts
(default 100,000) in one organisation: a title, 2-4 parties from a pool of Latin and Chinese names, 1-3 tags,
100-300 words of text drawn from a 20,000-word vocabulary with a Zipf distribution (s = 1), and for one contract
in four a Chinese passage of 20-80 characters.  They go (a) into a :class:`server.search.BlindIndex` on a real
SQLite store file (the Store's own connection settings: WAL, synchronous=FULL), in transactions of 1,000, and
(b) into an FTS5 table (sqlite3 directly, bench only) with metadata and party tables beside it.

Both index the same terms: FTS5 gets each field as the space-separated terms of ``server.search.terms`` (its
own unicode61 tokenizer would make a whole run of Chinese one token), and ranks with ``bm25`` and the same field
weights.  FTS5 is joined to its metadata with CROSS JOIN so that SQLite matches first (left to itself it sometimes
walks the status index and probes the full-text index per row, 100x slower).  Both answer with a page of 20 and
the exact total (FTS5: ``COUNT(*) OVER ()``); the totals must agree, which checks the blind index's AND semantics
and filters against FTS5 on every query.

Query kinds: 1, 2 and 3 terms, common (Zipf ranks 10-60: in ~25-85 % of contracts), medium (ranks 200-2,000:
~1-9 %), rare (taken from a random contract's text, ranks above 5,000), Chinese bigrams and party names, with
and without filters (status, date range, party), in relevance and date order.  Every query runs ``--repeat``
times on each index, alternating; the table shows p50 and p95 per kind and the ratio blind/FTS5 of the p95.
Target: blind p95 < 20 ms and <= 2x FTS5.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .common import Report, percentiles

VOCABULARY = 20_000
STATUSES = ("archived",) * 6 + ("sealed",) * 3 + ("completed",)
TAGS = ("lease", "supply", "nda", "employment", "loan", "services", "license", "purchase", "framework",
        "maintenance", "consulting", "distribution", "agency", "franchise", "partnership", "insurance")
SURNAMES_ZH = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN_ZH = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁"
HAN_WORDS = ("合同", "协议", "甲方", "乙方", "签署", "违约", "责任", "付款", "期限", "租赁", "保密", "条款", "争议",
             "仲裁", "法院", "生效", "解除", "赔偿", "货物", "交付", "验收", "价格", "发票", "税费", "通知", "地址",
             "保证", "担保", "知识产权", "不可抗力", "双方", "约定", "履行", "权利", "义务", "变更", "终止", "附件")
T0 = datetime(2020, 1, 1, tzinfo=UTC)
DAYS = 3650


@dataclass(frozen=True)
class Contract:
    cid: str
    title: str
    parties: list[tuple[str, str]]  # (person id, name)
    tags: str
    text: str
    status: str
    date: datetime


def _words(rng: random.Random, n: int) -> list[str]:
    letters = "bcdfghjklmnprstvz"
    vowels = "aeiou"
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        w = "".join(rng.choice(letters) + rng.choice(vowels) for _ in range(rng.randint(2, 5)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


class World:
    """The synthetic contracts, generated deterministically from a seed."""

    def __init__(self, n: int, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        self.vocab = _words(rng, VOCABULARY)
        self.cum = list(_cumulative(VOCABULARY))
        latin = [f"{a.capitalize()} {b.capitalize()}" for a, b in zip(_words(rng, 600)[:300], _words(rng, 600)[300:],
                                                                        strict=True)]
        chinese = [rng.choice(SURNAMES_ZH) + "".join(rng.choice(GIVEN_ZH) for _ in range(rng.randint(1, 2)))
                   for _ in range(300)]
        self.people = [(f"person-{i:04d}", name) for i, name in enumerate(latin + chinese)]
        self.contracts = [self._contract(i) for i in range(n)]

    def zipf(self, k: int) -> list[str]:
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=k)

    def _contract(self, i: int) -> Contract:
        rng = self.rng
        text = " ".join(self.zipf(rng.randint(100, 300)))
        if rng.random() < 0.25:
            text += " " + "".join(rng.choice(HAN_WORDS) for _ in range(rng.randint(10, 40)))
        return Contract(
            cid=f"env-{i:07d}", title=" ".join([rng.choice(TAGS).capitalize(), "agreement", *self.zipf(3)]),
            parties=rng.sample(self.people, rng.randint(2, 4)), tags=" ".join(rng.sample(TAGS, rng.randint(1, 3))),
            text=text, status=rng.choice(STATUSES), date=T0 + timedelta(seconds=rng.randrange(DAYS * 86400)))


def _cumulative(n: int) -> list[float]:
    total, out = 0.0, []
    for r in range(1, n + 1):
        total += 1.0 / r
        out.append(total)
    return out


def _fields(c: Contract) -> dict[str, str]:
    return {"title": c.title, "parties": " ".join(name for _, name in c.parties), "tags": c.tags, "text": c.text}


def build_blind(world: World, path: Path, *, key: bytes, build: bool = True) -> tuple[Any, float]:
    from server.search import BlindIndex
    from server.store import open_store

    store = open_store(str(path))
    index = BlindIndex(store, key)
    t = time.perf_counter()
    if not build:
        return index, 0.0
    for i in range(0, len(world.contracts), 1000):
        with store.transaction():
            for c in world.contracts[i:i + 1000]:
                index.add("org-bench", c.cid, _fields(c), [p for p, _ in c.parties], c.status, c.date)
    return index, time.perf_counter() - t


def build_fts(world: World, path: Path, *, build: bool = True) -> tuple[sqlite3.Connection, float]:
    from server.search.terms import iter_terms

    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    t = time.perf_counter()
    if not build:
        return conn, 0.0
    conn.execute("CREATE VIRTUAL TABLE fts USING fts5(title, parties, tags, text, tokenize='unicode61')")
    conn.execute("CREATE TABLE meta (id INTEGER PRIMARY KEY, cid TEXT NOT NULL UNIQUE, status TEXT NOT NULL, "
                 "date TEXT NOT NULL)")
    conn.execute("CREATE INDEX meta_date ON meta (date, id)")
    conn.execute("CREATE INDEX meta_status ON meta (status, date, id)")
    conn.execute("CREATE TABLE parties (party TEXT NOT NULL, doc INTEGER NOT NULL)")
    conn.execute("CREATE UNIQUE INDEX parties_party ON parties (party, doc)")
    conn.execute("BEGIN")
    for n, c in enumerate(world.contracts, 1):
        f = _fields(c)
        conn.execute("INSERT INTO fts (rowid, title, parties, tags, text) VALUES (?, ?, ?, ?, ?)",
                     (n, *(" ".join(iter_terms(f[k])) for k in ("title", "parties", "tags", "text"))))
        conn.execute("INSERT INTO meta (id, cid, status, date) VALUES (?, ?, ?, ?)",
                     (n, c.cid, c.status, c.date.strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
        conn.executemany("INSERT INTO parties (party, doc) VALUES (?, ?)", [(p, n) for p, _ in c.parties])
    conn.execute("COMMIT")
    return conn, time.perf_counter() - t


@dataclass(frozen=True)
class Query:
    kind: str
    text: str
    party: str | None = None
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    order: str = "relevance"


def make_queries(world: World, per_kind: int) -> list[Query]:
    rng = random.Random(7)
    common = world.vocab[9:60]
    medium = world.vocab[199:2000]

    def rare() -> str:
        while True:
            words = [w for w in rng.choice(world.contracts).text.split() if w in rare_set]
            if words:
                return rng.choice(words)

    rare_set = set(world.vocab[5000:])
    people = world.people

    def span() -> tuple[datetime, datetime]:
        start = T0 + timedelta(days=rng.randrange(DAYS - 365))
        return start, start + timedelta(days=365)

    kinds: dict[str, Callable[[], Query]] = {
        "1 common": lambda: Query("", rng.choice(common)),
        "1 medium": lambda: Query("", rng.choice(medium)),
        "1 rare": lambda: Query("", rare()),
        "1 chinese bigram": lambda: Query("", rng.choice(HAN_WORDS[:30])),
        "party name": lambda: Query("", rng.choice(people)[1]),
        "2 common": lambda: Query("", " ".join(rng.sample(common, 2))),
        "2 medium": lambda: Query("", " ".join(rng.sample(medium, 2))),
        "2 common+rare": lambda: Query("", f"{rng.choice(common)} {rare()}"),
        "3 common": lambda: Query("", " ".join(rng.sample(common, 3))),
        "3 mixed": lambda: Query("", f"{rng.choice(common)} {rng.choice(medium)} {rare()}"),
        "1 common, date order": lambda: Query("", rng.choice(common), order="date"),
        "2 medium, date order": lambda: Query("", " ".join(rng.sample(medium, 2)), order="date"),
        "1 common + status": lambda: Query("", rng.choice(common), status="sealed"),
        "1 common + party": lambda: Query("", rng.choice(common), party=rng.choice(people)[0]),
        "1 common + year": lambda: Query("", rng.choice(common), date_from=(s := span())[0], date_to=s[1]),
        "2 common + status + year, date order": lambda: Query(
            "", " ".join(rng.sample(common, 2)), status="archived", date_from=(s := span())[0], date_to=s[1],
            order="date"),
        "1 medium + party": lambda: Query("", rng.choice(medium), party=rng.choice(people)[0]),
    }
    out = []
    for kind, make in kinds.items():
        for _ in range(per_kind):
            q = make()
            out.append(Query(kind, q.text, q.party, q.status, q.date_from, q.date_to, q.order))
    return out


def fts_search(conn: sqlite3.Connection, q: Query, limit: int = 20) -> tuple[list[str], int]:
    from server.search.terms import query_terms

    match = " AND ".join(f'"{t}"' for t in query_terms(q.text))
    sql = ["SELECT m.cid, f.r, COUNT(*) OVER () AS total FROM (SELECT rowid AS id, bm25(fts, 4.0, 3.0, 2.0, 1.0) "
           "AS r FROM fts WHERE fts MATCH ?) f CROSS JOIN meta m ON m.id = f.id WHERE 1 = 1"]
    params: list[Any] = [match]
    if q.status is not None:
        sql.append(" AND m.status = ?")
        params.append(q.status)
    if q.date_from is not None and q.date_to is not None:
        sql.append(" AND m.date >= ? AND m.date < ?")
        params += [q.date_from.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), q.date_to.strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
    if q.party is not None:
        sql.append(" AND f.id IN (SELECT doc FROM parties WHERE party = ?)")
        params.append(q.party)
    sql.append(" ORDER BY r, m.id LIMIT ?" if q.order == "relevance" else " ORDER BY m.date DESC, m.id DESC LIMIT ?")
    params.append(limit)
    rows = conn.execute("".join(sql), params).fetchall()
    return [r[0] for r in rows], (rows[0][2] if rows else 0)


def blind_search(index: Any, q: Query) -> tuple[list[str], int]:
    page = index.search("org-bench", q.text, party=q.party, status=q.status, date_from=q.date_from,
                        date_to=q.date_to, order=q.order, limit=20)
    return [cid for cid, _ in page.results], page.total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--contracts", type=int, default=int(os.environ.get("BENCH_SEARCH_CONTRACTS", "100000")))
    ap.add_argument("--queries", type=int, default=20, help="queries per kind")
    ap.add_argument("--repeat", type=int, default=3, help="runs of every query on each index")
    ap.add_argument("--dir", type=Path, help="keep the databases here (default: a temporary directory)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reuse", action="store_true",
                    help="query the databases an earlier run left in --dir (same --contracts and --seed)")
    args = ap.parse_args(argv)
    directory = args.dir or Path(tempfile.mkdtemp(prefix="signet-bench-search-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _run(args, directory)
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)


def _size(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6


def _run(args: argparse.Namespace, directory: Path) -> None:
    report = Report("search")
    t = time.perf_counter()
    world = World(args.contracts, args.seed)
    print(f"generated {args.contracts} contracts in {time.perf_counter() - t:.1f} s", flush=True)
    blind_path, fts_path, key_path = directory / "blind.db", directory / "fts.db", directory / "search.key"
    build = not (args.reuse and key_path.exists())
    if build:
        for p in directory.glob("*.db*"):
            p.unlink()
        key_path.write_bytes(os.urandom(32))
    fts, fts_build = build_fts(world, fts_path, build=build)
    index, blind_build = build_blind(world, blind_path, key=key_path.read_bytes(), build=build)
    if build:
        print(f"FTS5 built in {fts_build:.1f} s ({_size(fts_path):.0f} MB)", flush=True)
        print(f"blind index built in {blind_build:.1f} s ({_size(blind_path):.0f} MB); "
              f"{blind_build / fts_build:.1f}x FTS5", flush=True)
        report.add("build fts5", fts_build, "s", quiet=True)
        report.add("build blind", blind_build, "s", "build fts5", quiet=True)

    queries = make_queries(world, args.queries)
    for q in queries[:: max(1, len(queries) // 50)]:  # warm both caches alike
        blind_search(index, q)
        fts_search(fts, q)
    times: dict[str, dict[str, list[float]]] = {}
    mismatches = 0
    for _ in range(args.repeat):
        for q in queries:
            t0 = time.perf_counter()
            _, b_total = blind_search(index, q)
            t1 = time.perf_counter()
            _, f_total = fts_search(fts, q)
            t2 = time.perf_counter()
            per = times.setdefault(q.kind, {"blind": [], "fts5": []})
            per["blind"].append((t1 - t0) * 1000)
            per["fts5"].append((t2 - t1) * 1000)
            if b_total != f_total:
                mismatches += 1
                print(f"  total differs for {q}: blind {b_total}, fts5 {f_total}")

    print(f"\n{args.contracts} contracts, {args.queries} queries per kind x {args.repeat} runs; ms")
    print(f"  {'kind':<38} {'blind p50':>9} {'p95':>7}   {'fts5 p50':>8} {'p95':>7}   {'p95 ratio':>9}")
    all_b: list[float] = []
    all_f: list[float] = []
    for kind, per in times.items():
        b50, b95 = percentiles(per["blind"], (50, 95))
        f50, f95 = percentiles(per["fts5"], (50, 95))
        all_b += per["blind"]
        all_f += per["fts5"]
        flag = "" if b95 < 20 and b95 <= 2 * f95 else "  <- misses target"
        print(f"  {kind:<38} {b50:9.2f} {b95:7.2f}   {f50:8.2f} {f95:7.2f}   {b95 / f95:8.2f}x{flag}")
        report.add(f"fts5 p95 {kind}", f95, "ms", quiet=True)
        report.add(f"blind p95 {kind}", b95, "ms", f"fts5 p95 {kind}", quiet=True)
    b50, b95 = percentiles(all_b, (50, 95))
    f50, f95 = percentiles(all_f, (50, 95))
    print(f"  {'all queries':<38} {b50:9.2f} {b95:7.2f}   {f50:8.2f} {f95:7.2f}   {b95 / f95:8.2f}x")
    print(f"  mean: blind {statistics.fmean(all_b):.2f} ms, fts5 {statistics.fmean(all_f):.2f} ms; "
          f"totals differing: {mismatches}")
    report.add("fts5 p95 all", f95, "ms")
    report.add("blind p95 all", b95, "ms", "fts5 p95 all")
    report.finish()


if __name__ == "__main__":
    main()
