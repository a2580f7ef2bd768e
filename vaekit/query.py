"""The label query language shared by ``encode``'s readers, ``fit-cluster`` and ``sample``.

A query selects rows of a latent store (or any labelled data) by name:

- ``smiling``: an attribute that is true, or a class (``3``, ``sneaker``);
- ``~smiling`` or ``not smiling``: its negation;
- ``smiling and not eyeglasses``: several conditions inside one term.

Several terms are ANDed, so ``["smiling", "~eyeglasses"]`` equals
``["smiling and not eyeglasses"]``. Names match case-insensitively, and a space
matches an underscore (``wearing hat`` finds ``Wearing_Hat``). A name that is
both a class and an attribute means the class. A class term matches rows whose
class id is that class; its negation matches labelled rows of any other class
(rows without a label, id -1, match neither). No terms at all select every row.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vaekit.errors import DataError, UsageError


class Labelled(Protocol):
    """What a query reads: a latent store, or anything with the same members."""

    @property
    def n(self) -> int: ...
    @property
    def class_names(self) -> list[str] | None: ...
    @property
    def attribute_names(self) -> list[str] | None: ...
    def labels(self) -> np.ndarray | None: ...
    def attributes(self) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Condition:
    """One name, possibly negated."""

    name: str  # normalised: lower case, single spaces
    negated: bool = False

    @property
    def text(self) -> str:
        return f"not {self.name}" if self.negated else self.name


def _key(name: str) -> str:
    """The form names are compared in: lower case, runs of spaces/underscores as one '_'."""
    return re.sub(r"[\s_]+", "_", name.strip().lower())


@dataclass(frozen=True)
class Query:
    """Conditions that must all hold. Build one with :func:`parse_query`."""

    conditions: tuple[Condition, ...] = ()

    @property
    def text(self) -> str:
        """The normalised query, e.g. ``"smiling and not eyeglasses"`` (``"all"`` when empty)."""
        return " and ".join(c.text for c in self.conditions) or "all"

    @property
    def slug(self) -> str:
        """A file-name-safe form, e.g. ``"smiling_and_not_eyeglasses"``."""
        slug = re.sub(r"[^a-z0-9_.-]+", "_", self.text.lower()).strip("_.")
        return slug or "all"

    def mask(self, store: Labelled) -> np.ndarray:
        """(N,) bool: the rows of ``store`` that satisfy every condition.

        Raises :class:`~vaekit.errors.DataError` for a name that is neither a class
        nor an attribute of ``store``, listing the available labels with counts.
        """
        return self.mask_arrays(
            store.n,
            store.labels(),
            store.class_names,
            store.attributes(),
            store.attribute_names,
        )

    def mask_arrays(
        self,
        n: int,
        labels: np.ndarray | None,
        class_names: Sequence[str] | None,
        attributes: np.ndarray | None,
        attribute_names: Sequence[str] | None,
    ) -> np.ndarray:
        """:meth:`mask` on plain arrays: ``labels`` (N,) class ids, ``attributes`` (N, A) bool."""
        classes = (
            {_key(c): i for i, c in enumerate(class_names or [])} if labels is not None else {}
        )
        attrs = (
            {_key(a): j for j, a in enumerate(attribute_names or [])}
            if attributes is not None
            else {}
        )
        mask = np.ones(n, dtype=bool)
        for condition in self.conditions:
            key = _key(condition.name)
            if key in classes:
                hit = labels == classes[key]
                if condition.negated:
                    hit = (labels >= 0) & ~hit
            elif key in attrs:
                hit = np.asarray(attributes[:, attrs[key]], dtype=bool)
                if condition.negated:
                    hit = ~hit
            else:
                raise DataError(
                    _unknown_message(
                        condition.name, labels, class_names, attributes, attribute_names
                    )
                )
            mask &= hit
        return mask


def parse_query(terms: Sequence[str] | str) -> Query:
    """Parse query terms (ANDed) into a :class:`Query`.

    Each term is ``name``, ``~name``, ``not name`` or several of these joined by
    ``and``; a name may contain spaces (``ankle boot``). Raises
    :class:`~vaekit.errors.UsageError` for an empty condition such as ``"smiling and"``.
    """
    if isinstance(terms, str):
        terms = [terms]
    conditions: list[Condition] = []
    for term in terms:
        words = term.split()
        if not words:
            continue
        parts: list[list[str]] = [[]]
        for word in words:
            if word.lower() in ("and", "&"):
                parts.append([])
            else:
                parts[-1].append(word)
        for part in parts:
            negated = False
            while part and (part[0].lower() == "not" or part[0].startswith(("~", "!"))):
                if part[0].lower() == "not":
                    part = part[1:]
                else:
                    part = [part[0][1:], *part[1:]] if len(part[0]) > 1 else part[1:]
                negated = not negated
            name = " ".join(part).lower()
            if not name:
                raise UsageError(
                    f"label query '{term}' has an empty condition; write e.g. "
                    "'smiling', '~eyeglasses' or 'smiling and not eyeglasses'"
                )
            condition = Condition(name, negated)
            if condition not in conditions:
                conditions.append(condition)
    return Query(tuple(conditions))


def label_counts(
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    attributes: np.ndarray | None,
    attribute_names: Sequence[str] | None,
) -> dict[str, dict[str, int]]:
    """``{"classes": {name: rows}, "attributes": {name: rows where true}}``."""
    counts: dict[str, dict[str, int]] = {"classes": {}, "attributes": {}}
    if labels is not None and class_names:
        per_class = np.bincount(labels[labels >= 0], minlength=len(class_names))
        counts["classes"] = {name: int(c) for name, c in zip(class_names, per_class, strict=False)}
    if attributes is not None and attribute_names:
        per_attr = np.asarray(attributes, dtype=bool).sum(0)
        counts["attributes"] = {
            name: int(c) for name, c in zip(attribute_names, per_attr, strict=False)
        }
    return counts


def _unknown_message(
    name: str,
    labels: np.ndarray | None,
    class_names: Sequence[str] | None,
    attributes: np.ndarray | None,
    attribute_names: Sequence[str] | None,
) -> str:
    counts = label_counts(labels, class_names, attributes, attribute_names)
    known = [*counts["classes"], *counts["attributes"]]
    if not known:
        return (
            f"unknown label '{name}': this data has no labels or attributes to select by; "
            "encode a labelled dataset"
        )
    close = difflib.get_close_matches(_key(name), [_key(k) for k in known], n=1, cutoff=0.5)
    hint = ";"
    if close:
        hint = f"; did you mean '{next(k for k in known if _key(k) == close[0])}'?"
    listing = []
    if counts["classes"]:
        listing.append("classes: " + ", ".join(f"{k} ({v})" for k, v in counts["classes"].items()))
    if counts["attributes"]:
        listing.append(
            "attributes: " + ", ".join(f"{k} ({v})" for k, v in counts["attributes"].items())
        )
    return f"unknown label '{name}'{hint} available {'; '.join(listing)}"
