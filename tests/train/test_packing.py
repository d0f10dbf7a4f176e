import numpy as np
import torch

from firmlm import models
from firmlm.train.packing import IGNORE, PackedDataset, labels_for, pack, tokenize_documents


def test_pack_restarts_positions_per_document_and_across_blocks():
    docs = [np.arange(1, 6, dtype=np.int32), np.arange(10, 13, dtype=np.int32), np.arange(20, 30, dtype=np.int32)]
    blocks = pack(docs, 6)
    assert blocks.input_ids.tolist() == [[1, 2, 3, 4, 5, 10], [11, 12, 20, 21, 22, 23], [24, 25, 26, 27, 28, 29]]
    assert blocks.position_ids.tolist() == [[0, 1, 2, 3, 4, 0], [0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert len(pack(docs, 7)) == 2  # the 4-token tail is dropped
    labels = labels_for(blocks.input_ids, blocks.position_ids)
    assert labels[0].tolist() == [1, 2, 3, 4, 5, IGNORE]
    assert labels[1].tolist() == [11, 12, IGNORE, 21, 22, 23]


def test_tokenize_documents_appends_eos_in_order():
    _, tok = models.load("tiny:llama")
    texts = ["int a;", "int b;", "long c;"]
    docs = tokenize_documents(iter(texts), tok, batch=2)
    assert [len(d) for d in docs] == [7, 7, 8]
    assert docs[0][-1] == tok.eos_token_id
    assert tok.decode(docs[0][:-1].tolist()) == "int a;"


def test_document_masking_isolates_packed_documents():
    """Logits of a document packed after another equal the logits of that document alone."""
    model, tok = models.load("tiny:llama")
    model.eval()
    a = tok("void a(void) { return; }", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    b = tok("int b = 42;", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    blocks = pack([np.asarray(a, np.int32), np.asarray(b, np.int32)], len(a) + len(b))
    item = PackedDataset(blocks)[0]
    with torch.no_grad():
        packed = model(input_ids=item["input_ids"][None], position_ids=item["position_ids"][None], use_cache=False).logits[0]
        alone = model(input_ids=torch.tensor([b])).logits[0]
        unmasked = model(input_ids=item["input_ids"][None], use_cache=False).logits[0]
    torch.testing.assert_close(packed[len(a):], alone, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(unmasked[len(a):], alone, atol=1e-3)


def test_document_masking_holds_with_eager_attention():
    model, tok = models.load("tiny:olmo3", attn_implementation="eager")
    model.eval()
    a = tok("int x = 1;", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    b = tok("void f(void);", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    item = PackedDataset(pack([np.asarray(a, np.int32), np.asarray(b, np.int32)], len(a) + len(b)))[0]
    with torch.no_grad():
        packed = model(input_ids=item["input_ids"][None], position_ids=item["position_ids"][None], use_cache=False).logits[0]
        alone = model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
    torch.testing.assert_close(packed[len(a):], alone, atol=1e-5, rtol=1e-4)
