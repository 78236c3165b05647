from __future__ import annotations

from typing import Any

import pytest

from model_space import PHOTO_SPACE, SearchSpace, SpaceError


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"lr": [0.1, 0.001]}, "space.lr"),
        ({"lr": [0.0, 0.1]}, "space.lr"),
        ({"weight_decay": [-1.0, 0.1]}, "space.weight_decay"),
        ({"dropout": [0.0, 1.0]}, "space.dropout"),
        ({"dropout": [0.2, 1.5]}, "space.dropout"),
        ({"widths": []}, "space.widths"),
        ({"widths": [16, 0]}, "space.widths"),
        ({"batch_sizes": [32, 32]}, "space.batch_sizes"),
        ({"optimizers": ["sgd", "lion"]}, "lion"),
        ({"depth": [3, 1]}, "space.depth"),
        ({"depth": [0, 2]}, "space.depth"),
        ({"depth": [1.5, 2]}, "space.depth"),
        ({"sgd_momentum": [0.5, 1.0]}, "space.sgd_momentum"),
        ({"lr": [0.001]}, "space.lr"),
        ({"lr": "fast"}, "space.lr"),
        ({"learning_rate": [0.1, 0.2]}, "space.learning_rate"),
        ({"convs": [0, 2]}, "space.convs"),
        ({"convs": [2, 5]}, "space.convs"),
        ({"convs": [1.5]}, "space.convs"),
        ({"residual": ["yes"]}, "space.residual"),
        ({"label_smoothing": [0.2, 0.1]}, "space.label_smoothing"),
        ({"label_smoothing": [0.0, 1.0]}, "space.label_smoothing"),
        ({"cutout": [0.0, 1.0]}, "space.cutout"),
        ({"cutout": [-0.25]}, "space.cutout"),
        ({"cutout": ["big"]}, "space.cutout"),
        ({"tta_flip": [1]}, "space.tta_flip"),
        ({"width_doubling": ["yes"]}, "space.width_doubling"),
        ({"schedules": ["cosine", "cyclic"]}, "cyclic"),
    ],
)
def test_space_bad_value_is_refused_naming_field(table: dict[str, Any], named: str) -> None:
    # Rule: a space that cannot be searched is refused, and the error names the field.
    with pytest.raises(SpaceError, match=named.replace(".", r"\.")):
        SearchSpace.from_dict(table)


def test_space_error_names_the_bad_value() -> None:
    # Rule: the message carries the offending value, not just the field.
    with pytest.raises(SpaceError, match=r"\[0\.3, 1\.2\]"):
        SearchSpace.from_dict({"dropout": [0.3, 1.2]})


def test_space_round_trips_through_dict() -> None:
    # Rule: to_dict/from_dict is lossless, so a stored space rebuilds the same object.
    space = SearchSpace(widths=(8, 16), lr=(1e-3, 1e-2))
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_space_defaults_cover_the_required_search() -> None:
    # Rule: the default space searches depth 1-4, all four optimizers and the usual log ranges.
    space = SearchSpace()
    assert space.depth == (1, 4)
    assert set(space.optimizers) == {"sgd", "adam", "adamw", "rmsprop"}
    assert space.lr == (1e-4, 1e-1)
    assert space.weight_decay == (1e-6, 1e-2)
    assert space.dropout == (0.0, 0.5)


def test_photo_space_is_a_valid_space_wider_than_the_default() -> None:
    # Rule: the photo space can express what practitioners write for photos: 2-3 convs per
    # block, residuals, one-cycle at SGD's high rates, label smoothing, cutout, test-time flips.
    space = SearchSpace.from_dict({k: list(v) for k, v in PHOTO_SPACE.items()})
    assert max(space.convs) >= 3 and True in space.residual and True in space.tta_flip
    assert "onecycle" in space.schedules and space.lr[1] >= 0.2
    assert space.label_smoothing[1] > 0 and max(space.cutout) > 0
