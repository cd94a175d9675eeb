import pytest
import yaml

from nuclei3d.config import typed_like_schema

from .conftest import REPO

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())


@pytest.mark.parametrize(
    ("override", "typed"),
    [
        ({"segment": {"spot_sigma_um": "2.5"}}, {"spot_sigma_um": 2.5}),
        ({"equalize": {"enabled": "false"}}, {"enabled": False}),
        ({"default_voxel_size_um": "[1.0, 0.2, 0.2]"}, [1.0, 0.2, 0.2]),
        ({"default_voxel_size_um": "null"}, None),
        ({"batches": "16"}, 16),
        (
            {"sweep": {"segment": {"spot_sigma_um": "[2, 3]"}}},
            {"segment": {"spot_sigma_um": [2, 3]}},
        ),
    ],
)
def test_strings_become_the_schemas_types(override, typed):
    (key,) = override
    assert typed_like_schema({**CONFIG, **override}, SCHEMA)[key] == typed


def test_strings_stay_where_the_schema_wants_strings():
    config = {**CONFIG, "device": "3.0", "results": "123"}
    typed = typed_like_schema(config, SCHEMA)
    assert typed["device"] == "3.0" and typed["results"] == "123"


def test_a_value_that_is_no_number_is_left_for_the_schema_to_refuse():
    typed = typed_like_schema({**CONFIG, "segment": {"spot_sigma_um": "wide"}}, SCHEMA)
    assert typed["segment"]["spot_sigma_um"] == "wide"


def test_the_config_is_not_changed():
    config = {"segment": {"spot_sigma_um": "2.5"}}
    typed_like_schema(config, SCHEMA)
    assert config == {"segment": {"spot_sigma_um": "2.5"}}
