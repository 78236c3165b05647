"""Bad-input cases of the data layer (images, trees, caches, torchvision files, data folders):
part of the corpus in tests/helpers/badinput.py, in the same Case format."""

from __future__ import annotations

from tests.helpers.badinput import Case

DATA_CASES: list[Case] = []
