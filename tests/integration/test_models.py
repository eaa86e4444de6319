# SPDX-License-Identifier: Apache-2.0
# The models endpoints as the OpenAI SDK uses them: list and retrieve.
import openai
import pytest

from conftest import base_config, free_port, mock_provider, model, target


@pytest.fixture
def gw(start_gateway):
    models = [model("mock-1", target("mock")), model("org/slashed-name", target("mock"))]
    return start_gateway(base_config(free_port(), providers=[mock_provider()], models=models))


def test_list_names_every_configured_model(gw):
    ids = [m.id for m in gw.client().models.list()]
    assert ids == ["mock-1", "org/slashed-name"]


def test_retrieve_a_model(gw):
    m = gw.client().models.retrieve("mock-1")
    assert m.id == "mock-1" and m.object == "model"


def test_retrieve_a_name_with_a_slash_percent_encoded(gw):
    with gw.http() as h:
        r = h.get("/v1/models/org%2Fslashed-name")
    assert r.status_code == 200 and r.json()["id"] == "org/slashed-name"


def test_retrieve_unknown_model_is_404(gw):
    with pytest.raises(openai.NotFoundError) as e:
        gw.client().models.retrieve("nope")
    assert e.value.body["code"] == "model_not_found"
