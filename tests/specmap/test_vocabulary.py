"""Query vocabulary: synonym groups, query-only stopwords, capitalised acronyms, user files."""

from __future__ import annotations

import pytest

from firmlm.errors import ConfigError
from firmlm.specmap.scorers import BM25Scorer, Candidate
from firmlm.specmap.vocabulary import Vocabulary, load_vocabulary


def test_bundled_groups_expand_a_query_once():
    vocabulary = load_vocabulary()
    tokens = vocabulary.analyze_query("Watchdog timer: the watchdog resets the SoC")
    assert tokens.count("watchdog") == 2  # the query's own words keep their counts
    assert tokens.count("wdt") == 1 and tokens.count("wdog") == 1  # synonyms are added once
    assert "sunxi" in vocabulary.analyze_query("Allwinner A10 interrupt controller")


def test_format_boilerplate_leaves_queries_only():
    vocabulary = load_vocabulary()
    tokens = vocabulary.analyze_query("Properties: reg: maxItems 1; Inherits: /schemas/i2c/i2c-controller.yaml#")
    assert not {"maxitems", "inherits", "schemas", "yaml", "properties"} & set(tokens)
    assert {"reg", "i2c", "controller"} <= set(tokens)


def test_can_is_the_bus_only_in_capitals():
    vocabulary = load_vocabulary()
    assert "can" not in vocabulary.analyze_query("The register can be written at any time")
    tokens = vocabulary.analyze_query("Bosch CAN controller; CAN-FD frames")
    assert tokens.count("can") == 2 and "flexcan" in tokens


def test_user_file_adds_groups(tmp_path):
    extra = tmp_path / "ours.yaml"
    extra.write_text("groups:\n  - [falcon, fx9]\nquery_stopwords: [revision]\n")
    vocabulary = load_vocabulary([extra])
    tokens = vocabulary.analyze_query("Falcon SoC clock tree, revision B")
    assert "fx9" in tokens and "revision" not in tokens
    assert "clk" in tokens  # the bundled groups stay


@pytest.mark.parametrize("text, expected", [
    ("groups: [[a]]\n", "two or more words"),
    ("[1, 2]\n", "expected a mapping"),
    ("synonyms: []\n", r"found \['synonyms'\]"),
    ("groups: [[a, b]]\nquery_stopwords: x\n", "`query_stopwords` must be a list"),
    ("groups: [[a, b\n", "invalid YAML"),
])
def test_bad_vocabulary_files_name_the_file(tmp_path, text, expected):
    path = tmp_path / "vocab.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as info:
        load_vocabulary([path])
    assert str(path) in str(info.value)


def test_missing_vocabulary_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_vocabulary([tmp_path / "absent.yaml"])


def test_bm25_finds_code_spelled_differently():
    files = [Candidate("drivers/watchdog/sunxi_wdt.c", "sunxi wdt c sunxi_wdt_start sunxi_wdt_ping"),
             Candidate("drivers/rtc/rtc-sun6i.c", "rtc sun6i c sun6i_rtc_settime alarm")]
    query = "Allwinner A10 Watchdog"
    assert BM25Scorer(query_analyzer=Vocabulary()).rank(query, files, k=2) == []  # no shared word
    ranked = BM25Scorer().rank(query, files, k=2)
    assert ranked[0][0] == "drivers/watchdog/sunxi_wdt.c" and ranked[0][1] > ranked[1][1] > 0
