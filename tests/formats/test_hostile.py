"""Hostile PDFs end in a report or InvalidDocument (with a reason in words, never document bytes): nothing else.

Before the pre-scan and the translation of parser failures, these made pyHanko raise OSError/ValueError
(negative seeks), RecursionError (deep nesting, an object stream inside itself), AssertionError..., and a
50 MB signature /Contents cost 4.4 GiB and 55 s to verify.  The mutation tests run hundreds of
deterministic mutants (tests/formats/mutants.py) through verify_pdf and sign_pdf.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from formats import InvalidDocument, PdfSignOptions, SigningError, TokenSigner, prescan, sign_pdf, verify_pdf
from formats.verify import verify_pdf_bytes

from . import hostile, minipki, mutants

CORPUS = Path(__file__).parent / "corpus"
SEED_TEXT = (b"Alice Example", b"Hostile Test", b"Clause 1")  # document bytes that must never reach a message


@pytest.fixture(scope="module")
def seeds(rsa_setup, ec_setup, tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("seeds")
    (d / "contract.pdf").write_bytes(hostile.base_contract())
    sign_pdf(d / "contract.pdf", d / "one.pdf", rsa_setup.signer, PdfSignOptions())
    sign_pdf(d / "one.pdf", d / "two.pdf", ec_setup.signer, PdfSignOptions(visible=True))
    return {name: (d / f"{name}.pdf").read_bytes() for name in ("contract", "one", "two")}


def _outcome(fn, *args, **kw) -> str:
    """"report"/"signed" or "invalid"; anything else fails the test with the mutant's name."""
    try:
        result = fn(*args, **kw)
    except InvalidDocument as e:
        msg = str(e)
        assert msg and not any(t.decode() in msg for t in SEED_TEXT), msg
        return "invalid"
    if hasattr(result, "valid"):
        assert result.valid or result.reasons(), result.to_dict()
        return "report"
    return "signed"


def test_mutants_through_verify_pdf(seeds, ca, tmp_path):
    cases = mutants.mutants(seeds, per_seed=150)
    assert len(cases) >= 400
    seen = {"report": 0, "invalid": 0}
    path = tmp_path / "mutant.pdf"
    for name, data in cases:
        path.write_bytes(data)
        try:
            seen[_outcome(verify_pdf, path, [ca.root_der], revocation="offline")] += 1
        except AssertionError:
            raise
        except BaseException as e:
            pytest.fail(f"{name}: {type(e).__name__} escaped verify_pdf")
    assert seen["report"] and seen["invalid"]  # the mutants reach both ends


def test_mutants_through_sign_pdf(seeds, ec_setup, ca, tmp_path):
    cases = [c for i, c in enumerate(mutants.mutants(seeds, per_seed=60, seed=7)) if i % 2 == 0][:100]
    assert len(cases) == 100
    seen = {"signed": 0, "invalid": 0}
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    for name, data in cases:
        src.write_bytes(data)
        try:
            outcome = _outcome(sign_pdf, src, out, ec_setup.signer, PdfSignOptions(field_name="Mutant"))
        except AssertionError:
            raise
        except BaseException as e:
            pytest.fail(f"{name}: {type(e).__name__} escaped sign_pdf")
        seen[outcome] += 1
        if outcome == "signed":  # what we wrote must verify to a verdict as well
            _outcome(verify_pdf, out, [ca.root_der], revocation="offline")
    assert seen["signed"] and seen["invalid"]


EXPECTED = {
    "deep-array.pdf": "nested deeper than 256 levels",
    "deep-dict.pdf": "nested deeper than 256 levels",
    "deep-mixed-in-signature.pdf": "nested deeper than 256 levels",
    "objstm-self-reference.pdf": "objects nested or referring to each other too deeply",
    "startxref-negative.pdf": "points outside the file",
    "prev-negative.pdf": "points outside the file",
    "prev-self.pdf": "malformed cross-reference data or objects",
    "startxref-beyond-eof.pdf": "damaged and cannot be read",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_files_are_invalid_documents(name, ca, ec_setup, tmp_path):
    data = (CORPUS / name).read_bytes()
    with pytest.raises(InvalidDocument, match=EXPECTED[name]):
        verify_pdf_bytes(data, [ca.root_der])
    (tmp_path / name).write_bytes(data)
    with pytest.raises(InvalidDocument, match=EXPECTED[name]):
        sign_pdf(tmp_path / name, tmp_path / "out.pdf", ec_setup.signer, PdfSignOptions())
    assert not (tmp_path / "out.pdf").exists()


def test_broken_contents_is_a_report_on_that_signature(ca):
    rep = verify_pdf_bytes((CORPUS / "contents-not-hex.pdf").read_bytes(), [ca.root_der])
    assert rep.reasons() == ["signature 'Sig1': the signature could not be validated: a truncated or malformed "
                             "stream, string or token (PdfStreamError)"]


def test_huge_contents_is_refused_before_parsing(tmp_path, ca, ec_setup):
    big = tmp_path / "big.pdf"
    hostile.write_huge_contents(big, 50_000_000)
    assert big.stat().st_size > 50_000_000
    msg = ("is refused: it has a signature value \\(/Contents\\) longer than 1048576 hex digits, more than any "
           "CMS signature needs \\(524288 bytes\\)")
    with pytest.raises(InvalidDocument, match="the document to verify " + msg):
        verify_pdf(big, [ca.root_der])
    with pytest.raises(InvalidDocument, match="the document to sign " + msg):
        sign_pdf(big, tmp_path / "out.pdf", ec_setup.signer, PdfSignOptions())


@pytest.mark.parametrize("kind", ["name", "number", "string", "hex", "comment"])
def test_overlong_tokens_are_refused(kind):
    base = hostile.base_contract()
    prescan.check_bytes(hostile.long_token(base, kind, 60_000))  # long, but within bounds
    with pytest.raises(InvalidDocument, match="longer than"):
        prescan.check_bytes(hostile.long_token(base, kind, 2_000_000))


def test_prescan_limits_are_parameters():
    doc = hostile.deep_nesting(hostile.base_contract(), 20)
    prescan.check_bytes(doc)
    with pytest.raises(InvalidDocument, match="deeper than 10 levels"):
        prescan.check_bytes(doc, limits=prescan.Limits(max_depth=10))
    contents = hostile.with_signature_dict(hostile.base_contract(), b"<" + b"00" * 600 + b">")
    prescan.check_bytes(contents)
    with pytest.raises(InvalidDocument, match="longer than 1000 hex digits"):
        prescan.check_bytes(contents, limits=prescan.Limits(max_contents_hex=1000))


def test_prescan_passes_real_documents_whole_and_in_chunks(seeds):
    for data in seeds.values():
        prescan.check_bytes(data)
    # nesting that straddles the scanner's 1 MiB read boundary is still counted whole
    head = hostile.base_contract()
    at = (1 << 20) - 150  # the brackets start here and go on past 1 MiB
    pad = b"%" + b" " * 1000 + b"\n"
    n, rest = divmod(at - len(head), len(pad))
    prefix = head + pad * n + b"%" + b" " * (rest - 2) + b"\n"
    assert len(prefix) == at
    prescan.check_bytes(prefix + b"[" * 200 + b"]" * 200 + b"\n%%EOF\n")
    with pytest.raises(InvalidDocument, match="nested deeper than 256 levels \\(at byte 1048682\\)"):
        prescan.check_bytes(prefix + b"[" * 300 + b"]" * 300 + b"\n%%EOF\n")


def test_verify_pdf_bytes_matches_verify_pdf(seeds, ca, tmp_path):
    (tmp_path / "two.pdf").write_bytes(seeds["two"])
    a = verify_pdf(tmp_path / "two.pdf", [ca.root_der], revocation="offline").to_dict()
    b = verify_pdf_bytes(seeds["two"], [ca.root_der], revocation="offline").to_dict()
    assert a == b and a["valid"]


def test_seed_corpus_is_current():
    files = {p.name: p.read_bytes() for p in CORPUS.glob("*.pdf")}
    generated = dict(hostile.corpus_files())
    assert files == generated
    assert len(files) >= 5 and all(len(d) < 16 * 1024 for d in files.values())


def test_corpus_through_the_fuzzer_entry_points(ca):
    for p in sorted(CORPUS.glob("*.pdf")):
        data = p.read_bytes()
        try:
            prescan.check_bytes(data)
        except InvalidDocument:
            pass
        assert _outcome(verify_pdf_bytes, data, [ca.root_der], revocation="offline") in ("report", "invalid")


class _FailingToken(minipki.SoftToken):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def sign_digest(self, key_id: str, dgst: bytes, *, hash_name: str = "sha256") -> bytes:
        raise self.error


@pytest.mark.parametrize("make_error", [
    lambda: __import__("hsm").PinIncorrect("wrong PIN", 2),
    lambda: __import__("hsm").TokenRemoved("the token went away"),
    lambda: ValueError("a token stand-in that fails with a ValueError"),  # must not turn into InvalidDocument
], ids=["PinIncorrect", "TokenRemoved", "ValueError"])
def test_token_errors_pass_through_unchanged(make_error, ca, tmp_path):
    error = make_error()
    token = _FailingToken(error)
    cert = ca.issue(minipki.name("Failing Token"), token.public_key)
    signer = TokenSigner(token, "k", certificate=cert, chain=[ca.root_der])
    (tmp_path / "c.pdf").write_bytes(hostile.base_contract())
    with pytest.raises(type(error)) as ei:
        sign_pdf(tmp_path / "c.pdf", tmp_path / "out.pdf", signer, PdfSignOptions())
    assert ei.value is error
    from formats import sign_detached

    with pytest.raises(type(error)) as ei:
        sign_detached(io.BytesIO(b"data"), signer)
    assert ei.value is error
    assert not isinstance(ei.value, SigningError | InvalidDocument)
