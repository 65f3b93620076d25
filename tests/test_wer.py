from tests.wer import wer, words


def test_wer_counts_edits_after_normalising() -> None:
    assert words("Press 1, then #!") == ["press", "one", "then"]
    assert wer("the cat sat", "The cat, sat.") == 0.0
    assert wer("the cat sat", "the dog sat") == 1 / 3
    assert wer("the cat sat", "the cat") == 1 / 3
    assert wer("a b", "a b c d") == 1.0
