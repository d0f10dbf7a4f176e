"""Task files: the format, and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from firmlm.exec.suite import suite_dir
from firmlm.exec.tasks import TaskFileError, load_tasks, read_task

GOOD = {"id": "t1", "level": 1, "target": "host", "prompt": "int f(void)\n{", "instruction": "Write f.",
        "harness": "int f(void);\nint main(void) { return f(); }\n", "expected_exit": 0,
        "reference": "int f(void) { return 0; }\n", "wrong": ["int f(void) { return 1; }\n"]}


def _write(folder: Path, name: str, data) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_bundled_suite_reads_cleanly():
    tasks, errors = load_tasks(suite_dir())
    assert not errors and len({t.id for t in tasks}) == len(tasks)
    firmware = [t for t in tasks if t.kind == "firmware"]
    assert len(firmware) >= 40 and {t.level for t in firmware} == {1, 2, 3, 4, 5}  # the suite
    assert sum(t.target == "rtl-iverilog" for t in firmware) >= 5
    assert {t.target for t in firmware} >= {"host", "qemu-stm32f405", "qemu-nrf51", "qemu-mps2-an386", "rtl-iverilog"}
    general = [t for t in tasks if t.kind == "general"]
    assert len(general) >= 5 and {t.target for t in general} == {"host", "host-cpp"}  # the forgetting check
    assert all(t.wrong and t.path is not None and t.path.parent == suite_dir() for t in tasks)


@pytest.mark.parametrize("change, key", [
    ({"reference": None}, "reference"),
    ({"target": "qemu-esp32"}, "target"),
    ({"level": 7}, "level"),
    ({"wrong": []}, "wrong"),
    ({"colour": "blue"}, "colour"),
    ({"expected_uart": "hi\n"}, "expected_uart"),  # host programs have no UART
    ({"unmodelled_writes": [{"device": "RCC", "offset": 64}]}, "unmodelled_writes"),
    ({"target": "qemu-stm32f405", "unmodelled_writes": [{"device": "RCC"}]}, "unmodelled_writes.0.offset"),
    ({"kind": "web"}, "kind"),
])
def test_bad_keys_are_named(tmp_path, change, key):
    data = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = _write(tmp_path, "bad.yaml", data)
    with pytest.raises(TaskFileError, match=rf"{path}: key `{key}`"):
        read_task(path)


def test_unknown_target_lists_the_known_ones(tmp_path):
    path = _write(tmp_path, "bad.yaml", {**GOOD, "target": "qemu-esp32"})
    with pytest.raises(TaskFileError, match="one of host, host-cpp, qemu-stm32f405"):
        read_task(path)


def test_a_bad_file_does_not_stop_the_others(tmp_path):
    _write(tmp_path, "a.yaml", GOOD)
    _write(tmp_path, "b.yaml", "id: [unclosed\n")
    _write(tmp_path, "c.yaml", {**GOOD, "id": "t1"})  # the same id again
    _write(tmp_path, "d.yaml", ["not", "a", "mapping"])
    tasks, errors = load_tasks(tmp_path)
    assert [t.id for t in tasks] == ["t1"]
    reasons = {Path(e["file"]).name: e["reason"] for e in errors}
    assert "invalid YAML" in reasons["b.yaml"]
    assert "key `id`" in reasons["c.yaml"] and "a.yaml" in reasons["c.yaml"]
    assert "expected a mapping" in reasons["d.yaml"]
