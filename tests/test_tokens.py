"""Counting prompt tokens before a call (vox.runtime.tokens)."""

from __future__ import annotations

import doctest
import time

import quicktok
from hypothesis import given
from hypothesis import strategies as st

from vox.runtime import tokens
from vox.runtime.providers.messages import Message, ModelRequest, ToolCall, ToolSpec
from vox.runtime.tokens import conservative_count, count_request, count_text, encoding_name, reservation_tokens

ALL_BUNDLED = ("cl100k_base", "o200k_base", "o200k_harmony", "llama3", "qwen3")


def test_doctests():
    assert doctest.testmod(tokens).failed == 0


def test_exact_counts_on_o200k():
    enc = quicktok.get_encoding("o200k_base")
    assert enc.encode("Hello, world!") == [13225, 11, 2375, 0]
    assert enc.encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0]
    assert count_text("gpt-4o-mini", "tiktoken is great!") == 6
    assert count_text("gpt-4", "tiktoken is great!") == 6  # cl100k: [83, 1609, 5963, 374, 2294, 0]
    assert count_text("gpt-4o", "hello world") == 2


def test_openai_request_matches_the_cookbook_formula():
    # OpenAI cookbook: 3 per message, the role and content as text, 3 priming the reply.
    messages = [Message("system", "You are a helpful assistant."), Message("user", "Hello, world!")]
    enc = quicktok.get_encoding("o200k_base")
    expected = 3 + sum(3 + len(enc.encode(m.role)) + len(enc.encode(m.content)) for m in messages)
    assert count_request("gpt-4o-mini", "openai", messages) == expected


def test_model_ids_map_to_their_encodings():
    assert encoding_name("gpt-4o-mini") == "o200k_base"
    assert encoding_name("gpt-4o-2024-08-06") == "o200k_base"
    assert encoding_name("gpt-4.1") == "o200k_base"  # quicktok's own table says cl100k
    assert encoding_name("gpt-5-mini") == "o200k_base"
    assert encoding_name("o4-mini") == "o200k_base"
    assert encoding_name("ft:gpt-4o-mini:acme::abc123") == "o200k_base"
    assert encoding_name("gpt-4-turbo") == "cl100k_base"
    assert encoding_name("gpt-3.5-turbo-0125") == "cl100k_base"
    assert encoding_name("gpt-oss-20b") == "o200k_harmony"
    assert encoding_name("meta-llama/Llama-3.1-8B-Instruct", "openai_compatible") == "llama3"
    assert encoding_name("llama3.1:8b", "openai_compatible") == "llama3"
    assert encoding_name("Qwen/Qwen3-8B", "openai_compatible") == "qwen3"
    assert encoding_name("qwen3:8b", "openai_compatible") == "qwen3"
    assert encoding_name("qwen2.5-7b-instruct", "openai_compatible") == "qwen3"
    # never exact: Claude (under any protocol) and unknown models
    assert encoding_name("claude-3-5-haiku-latest", "anthropic") is None
    assert encoding_name("anthropic/claude-sonnet-4", "openai_compatible") is None
    assert encoding_name("mistral-small", "openai_compatible") is None
    assert encoding_name("gpt-4o", "anthropic") is None  # the protocol decides who tokenizes


def test_everything_the_model_reads_is_counted():
    base = [Message("user", "Look up order 42")]
    plain = count_request("gpt-4o-mini", "openai", base)
    call = ToolCall(id="call_1", name="lookup_order", arguments={"order": 42})
    with_call = base + [Message("assistant", "", tool_calls=(call,)), Message("tool", '{"status":"shipped"}', tool_call_id="call_1", tool_name="lookup_order")]
    assert count_request("gpt-4o-mini", "openai", with_call) > plain + 10
    spec = ToolSpec("lookup_order", "Find an order by id", {"type": "object", "properties": {"order": {"type": "integer"}}, "required": ["order"]})
    with_tool = count_request("gpt-4o-mini", "openai", base, tools=[spec])
    assert with_tool > plain + 20
    schema = {"type": "object", "properties": {"reply": {"type": "string"}}}
    assert count_request("gpt-4o-mini", "openai", base, output_schema=schema) > plain + 10
    # Anthropic adds its tool-use system prompt
    assert count_request("claude-sonnet-4", "anthropic", base, tools=[spec]) > count_request("claude-sonnet-4", "anthropic", base) + 350


def test_reservation_adds_max_output():
    req = ModelRequest(model="gpt-4o-mini", messages=(Message("user", "hi"),), max_output=512)
    assert reservation_tokens(req, "openai") == count_request("gpt-4o-mini", "openai", req.messages) + 512


def test_special_token_text_and_surrogates_are_counted_as_text():
    assert count_text("gpt-4o", "<|endoftext|>") == 7
    assert count_text("gpt-4o", "a\ud800b") >= 3
    assert conservative_count(["a\ud800b"]) >= 3


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300) | st.lists(
    st.sampled_from(["the", " order", " 12345", "\n", "  ", "{\"a\":", "日本語", "données", "🙂", "ـة", "0", "<|im_start|>", "x" * 20]),
    max_size=60,
).map("".join)


@given(st.lists(texts, min_size=1, max_size=4))
def test_over_estimate_covers_every_bundled_encoding(parts):
    estimate = conservative_count(parts)
    for name in ALL_BUNDLED:
        enc = quicktok.get_encoding(name)
        exact = sum(len(enc.encode_ordinary(t)) for t in parts)
        assert estimate >= exact, (name, exact, estimate)
        if exact:
            assert estimate * 4 >= exact * 5  # the margin is there, not just equality


@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), texts), min_size=1, max_size=5))
def test_unknown_models_never_count_below_known_ones(pairs):
    messages = [Message(role, text) for role, text in pairs]
    for protocol in ("openai", "openai_compatible"):
        unknown = count_request("some-new-model", protocol, messages)
        for model in ("gpt-4o-mini", "gpt-4", "llama-3.1-8b", "qwen3-8b"):
            assert unknown >= count_request(model, protocol, messages)


def test_counting_is_fast():
    text = "Resolve the customer's ticket about order 1234: the parcel arrived damaged. " * 2_000
    msgs = [Message("system", "You are a support agent."), Message("user", text)]
    n_tokens = count_text("gpt-4o-mini", text)
    t0 = time.perf_counter()
    for _ in range(5):
        count_request("gpt-4o-mini", "openai", msgs)
    exact_rate = 5 * n_tokens / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(5):
        count_request("claude-sonnet-4", "anthropic", msgs)
    estimate_rate = 5 * n_tokens / (time.perf_counter() - t0)
    assert exact_rate > 1_000_000 and estimate_rate > 250_000, (exact_rate, estimate_rate)
