"""lutece._validation.check_int: the shared int check of audio.lm's configs and functions."""

import pytest

from lutece._validation import check_int


def test_check_int_accepts_ints_from_the_minimum_and_names_what_it_wanted():
    assert check_int("f", "n", 1) == 1 and check_int("f", "n", 0, 0) == 0
    assert check_int("f", "n", 3, 3) == 3
    for value in (0, -2, 1.0, True, "3", None):
        with pytest.raises(ValueError, match=rf"^f: n must be a positive int, got {value!r}$"):
            check_int("f", "n", value)
    with pytest.raises(ValueError, match=r"^f: n must be a non-negative int, got -1$"):
        check_int("f", "n", -1, 0)
    with pytest.raises(ValueError, match=r"^f: n must be an int >= 3, got 2$"):
        check_int("f", "n", 2, 3)
