"""The label query language: names, negation, AND, errors that list what exists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from vaekit.errors import DataError, UsageError
from vaekit.query import parse_query


@dataclass
class FakeStore:
    """Anything with the members a query reads (a latent store's shape)."""

    _labels: np.ndarray | None
    class_names: list[str] | None
    _attributes: np.ndarray | None
    attribute_names: list[str] | None

    @property
    def n(self) -> int:
        return len(self._labels if self._labels is not None else self._attributes)

    def labels(self):
        return self._labels

    def attributes(self):
        return self._attributes


@pytest.fixture
def faces() -> FakeStore:
    rng = np.random.default_rng(0)
    attributes = rng.random((200, 3)) < 0.5
    return FakeStore(None, None, attributes, ["Smiling", "Eyeglasses", "Wearing_Hat"])


@pytest.fixture
def clothes() -> FakeStore:
    labels = np.array([0, 1, 2, 2, 1, -1, 0, 2], dtype=np.int64)
    return FakeStore(labels, ["T-shirt/top", "Sneaker", "Ankle boot"], None, None)


def test_text_and_slug_are_normalised():
    query = parse_query(["Smiling and NOT eyeglasses"])
    assert query.text == "smiling and not eyeglasses"
    assert query.slug == "smiling_and_not_eyeglasses"
    assert parse_query(["smiling"]).slug == "smiling"
    assert parse_query(["~Eyeglasses"]).text == "not eyeglasses"
    assert parse_query(["t-shirt/top"]).slug == "t-shirt_top"
    assert parse_query([]).text == "all" and parse_query([]).slug == "all"


def test_several_terms_are_anded_like_one_term_with_and():
    assert parse_query(["smiling", "~eyeglasses"]) == parse_query(["smiling and not eyeglasses"])
    assert parse_query("smiling & not eyeglasses") == parse_query(["smiling", "not eyeglasses"])
    assert parse_query(["not ~smiling"]).text == "smiling"  # double negation


def test_attribute_mask_with_negation_and_and(faces):
    a = faces._attributes
    assert (parse_query(["smiling"]).mask(faces) == a[:, 0]).all()
    assert (parse_query(["~smiling"]).mask(faces) == ~a[:, 0]).all()
    expected = a[:, 0] & ~a[:, 1]
    assert (parse_query(["smiling and not eyeglasses"]).mask(faces) == expected).all()
    assert (parse_query(["Smiling", "not EYEGLASSES"]).mask(faces) == expected).all()
    assert (parse_query(["wearing hat"]).mask(faces) == a[:, 2]).all()  # space = underscore
    assert parse_query([]).mask(faces).all()


def test_class_terms_match_the_class_id(clothes):
    labels = clothes._labels
    assert (parse_query(["sneaker"]).mask(clothes) == (labels == 1)).all()
    assert (parse_query(["Ankle boot"]).mask(clothes) == (labels == 2)).all()
    # a negated class keeps labelled rows of other classes only (-1 is unknown, not "other")
    assert parse_query(["not sneaker"]).mask(clothes).tolist() == [
        True, False, True, True, False, False, True, True
    ]  # fmt: skip


def test_unknown_label_lists_the_labels_with_counts(faces, clothes):
    with pytest.raises(DataError) as info:
        parse_query(["smilng"]).mask(faces)
    message = str(info.value)
    assert "unknown label 'smilng'" in message and "did you mean 'Smiling'" in message
    count = int(faces._attributes[:, 1].sum())
    assert f"Eyeglasses ({count})" in message
    with pytest.raises(DataError, match=r"Sneaker \(2\)"):
        parse_query(["boot"]).mask(clothes)


def test_empty_condition_is_a_usage_error():
    with pytest.raises(UsageError, match="empty condition"):
        parse_query(["smiling and"])
    with pytest.raises(UsageError):
        parse_query(["not"])


def test_data_without_labels_says_so():
    with pytest.raises(DataError, match="no labels"):
        parse_query(["smiling"]).mask_arrays(3, None, None, None, None)
