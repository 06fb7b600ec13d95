"""Prompt-lookup drafts: the tokens after the most recent earlier occurrence of the newest n-gram."""

from peftlab.stages.lookup import lookup_draft


def test_the_longest_ngram_with_an_earlier_occurrence_decides():
    #         0  1  2  3  4  5  6  7  8  9
    tokens = [5, 6, 7, 8, 9, 1, 6, 7, 2, 6, 7]
    # "6 7" last occurred at 6..7 (followed by 2, 6, 7); the 3-gram "2 6 7" never occurred before
    assert lookup_draft(tokens, 3) == [2, 6, 7]
    assert lookup_draft(tokens, 1) == [2]
    assert lookup_draft([1, 2, 3, 9, 2, 3], 2) == [9, 2]
    # the 3-gram "1 2 3" beats the more recent 1-gram "3"
    assert lookup_draft([1, 2, 3, 4, 3, 5, 1, 2, 3], 2) == [4, 3]


def test_no_earlier_occurrence_or_no_room_gives_nothing():
    assert lookup_draft([1, 2, 3, 4], 5) == []
    assert lookup_draft([7], 5) == []
    assert lookup_draft([], 5) == []
    assert lookup_draft([1, 2, 1, 2], 0) == []
    # a guess is cut at the sequence's end
    assert lookup_draft([4, 8, 4], 5) == [8, 4]
