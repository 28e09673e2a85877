"""Model families are objects in one registry: every family a spec may name is implemented,
nothing else is, and an unknown name is refused with its id wherever it appears."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest

from chronoseal.errors import ModelError
from chronoseal.model import families, family_of, open_bundle
from chronoseal.model._bundle import MAGIC
from chronoseal.spec import EXOGENOUS_FAMILIES, MODEL_FAMILIES


def test_the_registry_implements_exactly_the_families_a_spec_may_name() -> None:
    named = set().union(*MODEL_FAMILIES.values())
    assert set(families()) == named
    assert {f for f in families() if family_of(f).uses_covariates} == EXOGENOUS_FAMILIES
    assert [f for f in families() if family_of(f).is_global] == ["mlforecast-lightgbm"]


def test_an_unknown_family_is_refused_with_its_id() -> None:
    with pytest.raises(ModelError) as caught:
        family_of("prophet")
    assert caught.value.id == "model.family.unknown"
    assert "mlforecast-lightgbm" in caught.value.message


def test_a_bundle_naming_an_unknown_family_is_refused_before_anything_is_loaded() -> None:
    manifest = json.dumps({"format": 1, "family": "prophet", "recipe": {}, "parts": []}).encode()
    bundle = MAGIC + struct.pack(">I", len(manifest)) + manifest
    with pytest.raises(ModelError) as caught:
        open_bundle(bundle, hashlib.sha256(bundle).digest())
    assert caught.value.id == "model.family.unknown"
