"""13-gram contamination of evaluation windows by the train split."""

from firmlm.evaluate.contamination import ShingleHasher, contamination, train_shingles
from firmlm.evaluate.samples import Sample

TRAIN = "static int uart_putc(struct uart *u, char c) { while (!(u->sr & TXE)) {} u->dr = c; return 0; }"


def _sample(cat: str, text: str) -> Sample:
    return Sample(f"{cat}@0", "heldout", cat, "r", f"{cat}.c", text, "")


def test_copied_text_is_fully_shared_and_new_text_is_not():
    hasher = ShingleHasher()
    train = train_shingles([TRAIN], hasher)
    copied = _sample("usb_stack", TRAIN)
    fresh = _sample("crypto", "uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); } /* sha */")
    half = _sample("stm32_hal", TRAIN + " void other(void) { gpio_set(3); gpio_clear(4); delay(10); }")
    got = contamination([copied, fresh, half], train, hasher)["heldout"]
    assert got["usb_stack"]["shared_13gram_share"] == 1.0
    assert got["crypto"]["shared_13gram_share"] == 0.0
    assert 0.1 < got["stm32_hal"]["shared_13gram_share"] < 0.9
    assert got["usb_stack"]["windows"] == 1 and got["usb_stack"]["shingles"] > 0


def test_hashes_are_order_sensitive_and_stable():
    hasher = ShingleHasher(n=3)
    a = hasher("a b c d")
    assert len(a) == 2 and (hasher("a b c d") == a).all()
    assert not set(hasher("c b a d").tolist()) & set(a.tolist())
