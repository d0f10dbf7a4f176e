import numpy as np

from firmlm import models
from firmlm.stages import run_stages
from firmlm.train.packing import pack
from firmlm.train.token_cache import cache_key, load_blocks_mmap, save_blocks, tokenizer_fingerprint


def test_blocks_roundtrip_through_memory_mapped_arrow(tmp_path):
    docs = [np.arange(i * 10, i * 10 + 7, dtype=np.int32) for i in range(9)]
    blocks = pack(docs, 8)
    path = tmp_path / "b.arrow"
    save_blocks(path, blocks, [len(d) for d in docs])
    loaded, doc_tokens = load_blocks_mmap(path, 8)
    assert np.array_equal(loaded.input_ids, blocks.input_ids) and np.array_equal(loaded.position_ids, blocks.position_ids)
    assert doc_tokens == [7] * 9
    path.write_bytes(b"garbage")
    assert load_blocks_mmap(path, 8) is None


def test_key_depends_on_data_tokenizer_and_block_size():
    _, tok = models.load("tiny:llama")
    fp = tokenizer_fingerprint(tok)
    base = cache_key(["a", "b"], [10, 20], fp, 64, 1000)
    assert base == cache_key(["a", "b"], [10, 20], fp, 64, 1000)
    assert len({base, cache_key(["b", "a"], [20, 10], fp, 64, 1000), cache_key(["a", "b"], [10, 20], "other", 64, 1000),
                cache_key(["a", "b"], [10, 20], fp, 128, 1000)}) == 4


def test_second_training_run_reads_the_cache(tiny_config, firmlm_cache, caplog):
    cfg = tiny_config("train.max_steps=2")
    run_stages(cfg, ["corpus", "train"])
    assert list((firmlm_cache / "tokens").glob("*.arrow"))
    caplog.set_level("INFO")
    run_stages(cfg, ["train"], force=True)
    assert "token cache hit" in caplog.text
