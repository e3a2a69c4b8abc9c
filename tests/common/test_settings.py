"""A stage's settings dataclass and the absl flags generated from it (common/settings.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from absl import flags

from common import settings
from common.settings import setting


@dataclasses.dataclass(frozen=True)
class Example:
    out: str = setting(None, "Where.", required=True)
    count: int = setting(4, "How many.", lower=1)
    rate: float | None = setting(None, "How fast.")
    mode: str = setting("a", "Which.", choices=("a", "b"))
    kinds: tuple[str, ...] = setting((), "Which kinds.", aliases=("sorts",))
    loud: bool = setting(False, "Shout.")


def parsed(*args: str) -> flags.FlagValues:
    flag_values = flags.FlagValues()
    settings.define_flags(Example, flag_values)
    flag_values(["prog", *args])
    return flag_values


def test_flags_parse_into_a_typed_config():
    flag_values = parsed("--out=/x", "--count=7", "--rate=0.5", "--mode=b", "--sorts=p,q", "--loud")
    config = settings.from_flags(Example, flag_values)
    assert config == Example(out="/x", count=7, rate=0.5, mode="b", kinds=("p", "q"), loud=True)
    assert settings.given(Example, flag_values) == {"out", "count", "rate", "mode", "kinds", "loud"}
    assert settings.from_flags(Example, parsed("--out=/y")) == Example(out="/y")
    assert settings.given(Example, parsed("--out=/y")) == {"out"}


@pytest.mark.parametrize(
    "args",
    [
        ["--out=/x", "--count=0"],  # below its lower bound
        ["--out=/x", "--mode=c"],  # not a choice
        ["--out=/x", "--count=x"],
        ["--count=2"],  # --out is required
        ["--out=/x", "--colour=red"],  # no such setting
    ],
)
def test_bad_flags_are_refused(args):
    with pytest.raises(flags.Error):
        parsed(*args)


def test_names_include_aliases():
    assert settings.names(Example) == ("out", "count", "rate", "mode", "kinds", "loud", "sorts")


def test_flags_file_values_are_typed_by_their_field():
    fields = {f.name: f for f in dataclasses.fields(Example)}
    assert settings.parse_value(fields["count"], "3") == 3
    assert settings.parse_value(fields["rate"], "None") is None
    assert settings.parse_value(fields["loud"], "false") is False
    assert settings.parse_value(fields["kinds"], "p,q") == ("p", "q")
    with pytest.raises(ValueError, match="--count=three is not a valid int"):
        settings.parse_value(fields["count"], "three")
    with pytest.raises(ValueError, match="--loud=maybe is not a bool"):
        settings.parse_value(fields["loud"], "maybe")


def test_the_resolved_config_is_written_as_json():
    config = Example(out="/x", kinds=("p",))
    written = json.loads(settings.to_json(config))
    assert written == {
        "out": "/x",
        "count": 4,
        "rate": None,
        "mode": "a",
        "kinds": ["p"],
        "loud": False,
    }
    assert Example(**{**written, "kinds": tuple(written["kinds"])}) == config
