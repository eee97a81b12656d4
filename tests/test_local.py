"""The embedded model, for real: llama.cpp's server running SmolLM2-135M."""

from pathlib import Path

import pytest
from openai import OpenAI

from deckgen.brief import parse_brief
from deckgen.config import Config
from deckgen.deck import Generator, generate_section
from deckgen.errors import ConfigError
from deckgen.examples import select_examples
from deckgen.llm.client import ModelRoute
from deckgen.llm.local import LlamaCounter, LocalServer
from deckgen.llm.router import Models, Router

pytestmark = pytest.mark.slow

BRIEF = parse_brief({
    "client": "Harbor Logistics", "industry": "Logistics",
    "opportunity": "Dock appointment scheduling at three port-side distribution centres",
    "notes": "Trucks queue at the gates; appointments are kept in a shared Excel sheet.",
    "contacts": [{"name": "Ana Ruiz", "role": "COO"}, {"name": "Tom Lee", "role": "CIO"}],
    "metrics": {"Average truck wait": "2.5 hours"},
})


@pytest.fixture(scope="module")
def counter(config):
    return LlamaCounter(config.local_model_path)


@pytest.fixture(scope="module")
def local_route(config, local_url, counter):
    client = OpenAI(base_url=local_url, api_key="local", max_retries=0, timeout=300)
    return ModelRoute("local", config.local_model_path.stem, config.local_context, counter,
                      client, "llama.cpp")


def test_token_count_matches_what_the_server_counts(local_route, counter, renderer, specs,
                                                    cases):
    spec = specs["current_state"]
    examples = [s.case for s in select_examples(BRIEF, cases, spec.name)][:1]
    messages = renderer.render_prompt(spec, BRIEF, examples)
    response = local_route.client.chat.completions.create(
        model=local_route.model, messages=messages, max_tokens=4, temperature=0)
    assert response.usage.prompt_tokens == counter.count(messages)


def test_a_section_from_the_real_model_matches_its_schema(local_route, specs, cases, renderer):
    router = Router(lambda name: local_route, ["local"])
    gen = Generator(specs, cases, renderer, router, temperature=0.2)
    spec = specs["stakeholders"]
    result = generate_section(gen, spec, BRIEF)
    assert result.status == "ok", result.error
    assert result.route == "local"
    assert result.counted_prompt_tokens <= result.budget
    assert result.counted_prompt_tokens + spec.max_completion_tokens <= local_route.context
    # the first call's prompt tokens, as the server counted them, equal our exact count
    if result.attempts == 1:
        assert result.prompt_tokens == result.counted_prompt_tokens
    people = result.content["people"]
    assert spec.min_items <= len(people) <= spec.max_items
    assert all(len(p["cares_about"]) <= 100 for p in people)
    assert len(result.lines) == len(people)


def test_a_dead_self_hosted_route_fails_over_to_the_real_local_model(
        local_route, specs, cases, renderer, fake_openai):
    from deckgen.config import RetryPolicy
    from tests.samples import DOWN, route

    fake_openai.reply(None, *[DOWN] * 3)
    routes = {"self-hosted": route("self-hosted", fake_openai), "local": local_route}
    router = Router(lambda name: routes[name], ["self-hosted", "local"],
                    RetryPolicy(server_retries=1, backoff_initial=0.01, backoff_max=0.02))
    gen = Generator(specs, cases, renderer, router, temperature=0.2)
    result = generate_section(gen, specs["current_state"], BRIEF)
    assert result.route == "local" and result.status == "ok", result.error
    assert [f["route"] for f in result.failovers] == ["self-hosted"]
    assert len(fake_openai.requests) == 2


def tiny_lora(path: Path, layers: int = 30, width: int = 576) -> Path:
    """A rank-1 LoRA for SmolLM2-135M in llama.cpp's GGUF adapter format (what
    convert_lora_to_gguf.py writes), on the query and value projections of every layer, with
    fixed random weights large enough to change what the model writes."""
    gguf = pytest.importorskip("gguf")
    import numpy as np

    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 1.0)
    for layer in range(layers):
        for name in ("attn_q", "attn_v"):
            out = width if name == "attn_q" else width // 3  # 3 query heads per KV head
            prefix = f"blk.{layer}.{name}.weight"
            writer.add_tensor(f"{prefix}.lora_a", rng.normal(0, 1, (1, width)).astype("f2"))
            writer.add_tensor(f"{prefix}.lora_b", rng.normal(0, 1, (out, 1)).astype("f2"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _greedy(url: str, model: str) -> str:
    client = OpenAI(base_url=url, api_key="local", max_retries=0, timeout=120)
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=12, temperature=0)
    return response.choices[0].message.content or ""


def test_the_local_server_applies_a_lora_adapter(config, local_url, tmp_path):
    adapter = tiny_lora(tmp_path / "tiny-lora.gguf")
    server = LocalServer(config.local_model_path, config.local_context, 2, lora_path=adapter)
    url = server.start()
    try:
        with_adapter = _greedy(url, config.local_model_path.stem)
        log = server.tail(100_000)
        assert f"loading lora adapter from '{adapter}'" in log
        assert "lora for 'blk.29.attn_v.weight'" in log
    finally:
        server.stop()
    # the same greedy request on the base model: the adapter changed what the model wrote
    assert with_adapter != _greedy(local_url, config.local_model_path.stem)


def test_a_missing_lora_adapter_is_a_configuration_error_before_any_start(tmp_path):
    missing = tmp_path / "nowhere.gguf"
    config = Config.from_env({"DECKGEN_LOCAL_LORA": str(missing)})
    assert config.local_lora == missing
    models = Models(config)
    with pytest.raises(ConfigError, match="DECKGEN_LOCAL_LORA") as raised:
        models.build("local")
    assert str(missing) in raised.value.message
    server = LocalServer(config.local_model_path, config.local_context, 1, lora_path=missing)
    with pytest.raises(ConfigError):
        server.start()
    assert server.state() == "stopped"


def test_the_shipped_adapter_is_the_default_for_the_bundled_model_only(tmp_path):
    from deckgen.config import BUNDLED_LORA

    assert BUNDLED_LORA.is_file()  # package data (setup.cfg)
    assert Config.from_env({}).local_lora == BUNDLED_LORA
    assert Config.from_env({"DECKGEN_LOCAL_LORA": "off"}).local_lora is None
    other = tmp_path / "another-model.gguf"
    other.write_bytes(b"GGUF")
    # an adapter fits the model it was trained on: none for another model unless named
    assert Config.from_env({"DECKGEN_LOCAL_MODEL": str(other)}).local_lora is None


def test_the_local_server_applies_the_shipped_adapter(config, local_url):
    from deckgen.config import BUNDLED_LORA

    server = LocalServer(config.local_model_path, config.local_context, 2,
                         lora_path=BUNDLED_LORA)
    url = server.start()
    try:
        with_adapter = _greedy(url, config.local_model_path.stem)
        assert f"loading lora adapter from '{BUNDLED_LORA}'" in server.tail(100_000)
    finally:
        server.stop()
    assert with_adapter != _greedy(local_url, config.local_model_path.stem)
