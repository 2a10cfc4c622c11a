"""Search terms: normalisation (NFKC, case, Latin accents), words, CJK bigrams, queries."""

from __future__ import annotations

import pytest

from server.errors import InvalidArgument
from server.search.terms import (
    MAX_QUERY_TERMS,
    EmptyQuery,
    QueryTooLong,
    iter_terms,
    normalize,
    query_terms,
    term_frequencies,
)


def test_nfkc_and_case_folding() -> None:
    assert normalize("ＡＢＣ１２３") == "abc123"  # full-width forms
    assert normalize("ﬁle") == "file"  # ligature
    assert normalize("Straße") == "strasse"
    assert normalize("ΣΊΣΥΦΟΣ") == normalize("σίσυφος")  # final sigma folds like the others
    assert normalize("x²") == "x2"
    assert iter_terms("ｶﾀｶﾅ") == iter_terms("カタカナ")  # half-width katakana


def test_latin_accents_stripped_other_scripts_kept() -> None:
    assert normalize("Müller Ševčík Ångström Crème") == "muller sevcik angstrom creme"
    assert normalize("e\u0301") == "e"  # decomposed input too
    assert normalize("Йогурт") == "йогурт"  # Cyrillic й keeps its breve
    assert normalize("ё") == "ё"
    assert normalize("한국어") == "한국어"  # Hangul is not decomposed
    assert iter_terms("MÜLLER") == iter_terms("muller") == ["muller"]


def test_words_and_separators() -> None:
    assert iter_terms("ACME-2024_v2, (Supply) agreement!") == ["acme", "2024", "v2", "supply", "agreement"]
    assert iter_terms("don't") == ["don"]  # apostrophe separates; "t" is one letter
    assert iter_terms("a b c 7") == []  # one-character words are dropped
    assert iter_terms("the Terms of the Contract") == ["terms", "contract"]  # stop words
    assert iter_terms("Договор поставки на год") == ["договор", "поставки", "год"]
    assert iter_terms("e-mail x@y.com") == ["mail", "com"]


def test_cjk_bigrams() -> None:
    assert iter_terms("张三签署合同") == ["张三", "三签", "签署", "署合", "合同"]
    for word in ("合同", "签署", "张三"):
        assert word in iter_terms("张三签署合同")
    assert iter_terms("合") == ["合"]  # a lone character is a unigram
    assert iter_terms("合 同") == ["合", "同"]
    assert iter_terms("東京タワー") == ["東京", "京タ", "タワ", "ワー"]  # Han and kana in one run
    assert iter_terms("계약서 서명") == ["계약", "약서", "서명"]


def test_mixed_scripts() -> None:
    assert iter_terms("Alice与张三签署NDA协议v2") == ["alice", "与张", "张三", "三签", "签署", "nda", "协议", "v2"]
    assert iter_terms("合同No.123号") == ["合同", "no", "123", "号"]


def test_term_frequencies() -> None:
    tf = term_frequencies("Supply supply SUPPLY of goods; 合同合同")
    assert tf["supply"] == 3 and tf["goods"] == 1
    assert tf["合同"] == 2 and tf["同合"] == 1
    assert "of" not in tf


def test_deterministic() -> None:
    text = "Ｍüller 张三签署合同 ДОГОВОР x²"
    assert iter_terms(text) == iter_terms(text) == iter_terms(normalize(text))


def test_queries() -> None:
    assert query_terms("Supply supply agreement") == ["supply", "agreement"]  # distinct, in order
    assert query_terms("张三签署") == ["张三", "三签", "签署"]
    for empty in ("", "   ", "!!! ... ---", "a", "the of and", "_"):
        with pytest.raises(EmptyQuery) as e:
            query_terms(empty)
        assert isinstance(e.value, InvalidArgument) and "no searchable word" in e.value.message
    assert len(query_terms(" ".join(f"w{i:02d}" for i in range(MAX_QUERY_TERMS)))) == MAX_QUERY_TERMS
    with pytest.raises(QueryTooLong):
        query_terms(" ".join(f"w{i:02d}" for i in range(MAX_QUERY_TERMS + 1)))
