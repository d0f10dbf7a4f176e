"""M1-M3 on a small tree: folder evidence from files or descriptions, most specific folders, keep_best."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmlm.specmap.hierarchy import Hierarchy, HierarchySettings, keep_best, most_specific
from firmlm.specmap.repository import RepositoryIndex
from firmlm.specmap.scorers import BM25Scorer
from firmlm.specmap.sections import Section


def _tree(root: Path) -> Path:
    files = {
        # the watchdog driver sits in a folder whose other files (and so its description) are about timers
        "drivers/timer/timer_core.c": "/* timer core: tick, clockevent, periodic interrupt */\nint timer_tick(void);\n",
        "drivers/timer/timer_irq.c": "/* timer interrupt routing */\nint timer_irq(void);\n",
        "drivers/timer/timer_sync.c": "/* timer sync with the tick broadcast */\nint timer_sync(void);\n",
        "drivers/timer/timer_pm.c": "/* timer suspend and resume */\nint timer_pm(void);\n",
        "drivers/timer/wd_iwdg.c": "/* independent watchdog: reload key, prescaler, window */\nint iwdg_reload(void);\n",
        "drivers/misc/watchdog_notes.h": "/* misc helpers */\nint misc_helper(void);\n",
        "drivers/misc/Kconfig": "config MISC\n\tbool \"Miscellaneous watchdog notifier and reboot helpers\"\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def index(tmp_path) -> RepositoryIndex:
    return RepositoryIndex.build(_tree(tmp_path / "repo"), tmp_path / "cache")


SECTION = Section(document="rm.md", title="Independent watchdog", path=("RM", "Watchdog"),
                  text="The independent watchdog is reloaded with the key 0xAAAA; the prescaler divides the LSI clock.",
                  span=(1, 3))


def test_folders_are_found_through_their_files(index):
    hierarchy = Hierarchy(index, BM25Scorer(), HierarchySettings(folders_k=1, workers=1))
    ranked = hierarchy.rank_folders("independent watchdog reload key prescaler")
    files = BM25Scorer().rank("independent watchdog reload key prescaler", index.file_candidates(), 10)
    assert ranked[0] == ("drivers/timer", files[0][1])  # a folder scores as its best file
    mapping = hierarchy.map_section(SECTION)
    assert [f for f, _ in mapping.folders] == ["drivers/timer"]
    assert mapping.files[0][0] == "drivers/timer/wd_iwdg.c"


def test_description_evidence_reads_folder_summaries(index):
    hierarchy = Hierarchy(index, BM25Scorer(), HierarchySettings(folders_k=1, workers=1,
                                                                 folder_evidence="description"))
    # the misc folder's Kconfig prompt says "watchdog"; the timer folder's summary is about timers
    assert [f for f, _ in hierarchy.map_section(SECTION).folders] == ["drivers/misc"]


def test_unknown_folder_evidence_is_refused(index):
    with pytest.raises(ValueError, match="folder_evidence"):
        Hierarchy(index, BM25Scorer(), HierarchySettings(folder_evidence="guess"))


def test_keep_best_and_most_specific():
    assert keep_best([("a", 4.0), ("b", 2.5), ("c", 1.0)], k=3, keep_ratio=0.5) == [("a", 4.0), ("b", 2.5)]
    assert keep_best([("a", 0.0)], k=3, keep_ratio=0.5) == []
    assert most_specific([(".", 1.0), ("drivers", 0.9), ("drivers/i2c", 0.8), ("board", 0.7)]) == [
        ("drivers/i2c", 0.8), ("board", 0.7)]
