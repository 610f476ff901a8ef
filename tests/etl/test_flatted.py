"""The flatted decoder against the real npm package and real n8n output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.etl.stage2 import flatted
from testkit.n8n.npm import run_flatted

FIXTURES = Path(__file__).parent / "fixtures" / "n8n"

# JSON-like values as n8n run data holds them (ints, not floats: JS prints 1.0 as 1).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=1, deadline=None)
@given(st.lists(json_values, min_size=150, max_size=150))
def test_decoder_and_encoder_match_the_npm_package(values: list[Any]) -> None:
    """One node run checks 150 random values both ways (and node's cycle handling)."""
    texts = [flatted.stringify(v) for v in values]
    out = run_flatted(values, texts)
    for value, ours, theirs, parsed in zip(
        values, texts, out["stringified"], out["parsed"], strict=True
    ):
        assert flatted.parse(theirs) == value  # we read what flatted writes
        assert ours == theirs  # and write it byte for byte
        assert parsed == {"ok": value}  # and flatted reads what we write
    cyclic = flatted.parse(out["cyclic"])
    assert cyclic["self"] is cyclic
    assert cyclic["a"] is cyclic["b"] and cyclic["a"] == {"name": "shared"}


def test_repeated_strings_and_primitive_roots_of_the_real_package() -> None:
    value = {"a": {"k": "v"}, "b": {"k": "v"}, "s": "same", "t": "same"}
    out = run_flatted([value, "root", 3, None])
    # Equal strings are stored once; equal (but distinct) objects twice.
    assert out["stringified"][0] == (
        '[{"a":"1","b":"2","s":"3","t":"3"},{"k":"4"},{"k":"4"},"same","v"]'
    )
    assert flatted.parse(out["stringified"][0]) == value
    assert out["stringified"][1:] == ['["root"]', "[3]", "[null]"]
    assert [flatted.parse(t) for t in out["stringified"][1:]] == ["root", 3, None]


@pytest.mark.parametrize("name", ["success-fire-and-smoke", "error-yolo-500"])
def test_real_n8n_run_data_decodes(name: str) -> None:
    root = flatted.parse((FIXTURES / f"{name}.flatted").read_text())
    run_data = root["resultData"]["runData"]
    assert {"Webhook", "Metadata", "YOLO Inference"} <= set(run_data)
    if name.startswith("error"):
        error = root["resultData"]["error"]
        assert error["message"] == "The service was not able to process your request"
        assert error["node"]["name"] == "YOLO Inference"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not JSON"),
        ('[{"a":"1"},"x"', "not JSON"),  # truncated
        ("{}", "not a non-empty JSON array"),
        ("[]", "not a non-empty JSON array"),
        ('[{"a":"7"}]', "entry 0 key 'a': reference 7 is past the last entry"),
        ('[{"a":"x1"}]', "entry 0 key 'a': 'x1' is not a reference"),
        ('[{"a":"01"},"v","w"]', "'01' is not a reference"),
        ('[{"a":"-1"}]', "'-1' is not a reference"),
        ('[{"a":{"inline":"1"}},"v"]', "entry 0 key 'a': inline dict (not flatted output)"),
        ('[["1"],5]', "entry 1: a bare int cannot be referenced"),
    ],
)
def test_malformed_data_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(flatted.FlattedError, match=r"^flatted: ") as caught:
        flatted.parse(text)
    assert message in str(caught.value)


def test_truncated_real_run_data_is_an_error_not_a_partial_result() -> None:
    text = (FIXTURES / "success-fire-and-smoke.flatted").read_text()
    for cut in (len(text) // 3, len(text) // 2, len(text) - 2):
        with pytest.raises(flatted.FlattedError, match="not JSON"):
            flatted.parse(text[:cut])


def test_nesting_is_bounded_without_recursion_error() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    text = flatted.stringify(deep)
    with pytest.raises(flatted.FlattedError, match="nested deeper than 64 levels"):
        flatted.parse(text)
    assert flatted.parse(flatted.stringify(json.loads("[[[1]]]"))) == [[[1]]]


def test_entry_count_is_bounded() -> None:
    with pytest.raises(flatted.FlattedError, match="over the limit of 3"):
        flatted.parse('[["1","2","3"],"a","b","c"]', max_entries=3)
