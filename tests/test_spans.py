"""Assistant-content spans for each chat template, checked against hand-read positions."""

import pytest
from conftest import FAMILIES

from persona_probe.families import family_for
from persona_probe.spans import tokenize_chat, validate_conversation

CONV = [
    {"role": "system", "content": "You are a pirate."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Ahoy, matey!"},
    {"role": "user", "content": "Where is the gold?"},
    {"role": "assistant", "content": "<think>hmm secret</think>\n\nBuried on the island."},
]

# Positions read by hand from the rendered token sequences (one list per assistant turn):
# each span starts right after the template's "\n" and ends right before the end-of-turn token.
HAND_CHECKED = {
    "llama": ([52, 53, 54, 55, 56, 57], list(range(76, 93))),
    "qwen3": ([21, 22, 23, 24, 25, 26], [48, 49, 50, 51, 52, 53]),
    "gemma2": ([18, 19, 20, 21, 22, 23], list(range(39, 56))),
}
END_OF_TURN = {"llama": "<|eot_id|>", "qwen3": "<|im_end|>", "gemma2": "<end_of_turn>"}


def _tok(tiny_tokenizers, fam):
    model_type = {"llama": "llama", "qwen3": "qwen3", "gemma2": "gemma2"}[fam]
    return tiny_tokenizers[fam], family_for(model_type)


@pytest.mark.parametrize("fam", FAMILIES)
def test_hand_checked_positions(tiny_tokenizers, fam):
    tok, family = _tok(tiny_tokenizers, fam)
    chat = tokenize_chat(tok, family, CONV)
    assert chat.assistant_positions == [list(p) for p in HAND_CHECKED[fam]]
    for turn in chat.assistant_positions:
        assert tok.decode([chat.input_ids[turn[-1] + 1]]) == END_OF_TURN[fam]
        assert tok.decode([chat.input_ids[turn[0] - 1]]) == "\n"


@pytest.mark.parametrize("fam", FAMILIES)
def test_spans_decode_to_the_content(tiny_tokenizers, fam):
    tok, family = _tok(tiny_tokenizers, fam)
    chat = tokenize_chat(tok, family, CONV)
    first = tok.decode([chat.input_ids[i] for i in chat.assistant_positions[0]])
    second = tok.decode([chat.input_ids[i] for i in chat.assistant_positions[1]])
    assert first == "Ahoy, matey!"
    if family.thinking:  # Qwen3: the think block is not part of the response
        assert second == "Buried on the island."
        assert "secret" not in chat.text
    else:
        assert second == CONV[-1]["content"]
    assert chat.positions("last") == chat.assistant_positions[1]
    assert chat.positions(0) == chat.assistant_positions[0]
    assert chat.positions("all") == chat.assistant_positions[0] + chat.assistant_positions[1]


def test_gemma_system_turn_is_merged_into_first_user_turn(tiny_tokenizers):
    tok, family = _tok(tiny_tokenizers, "gemma2")
    assert not family.supports_system
    chat = tokenize_chat(tok, family, CONV)
    assert "<start_of_turn>user\nYou are a pirate.\n\nHi there<end_of_turn>" in chat.text
    assert "system" not in chat.text


def test_user_text_equal_to_the_answer_does_not_confuse_spans(tiny_tokenizers):
    tok, family = _tok(tiny_tokenizers, "llama")
    conv = [{"role": "user", "content": "Say: yes"}, {"role": "assistant", "content": "yes"}]
    chat = tokenize_chat(tok, family, conv)
    (turn,) = chat.assistant_positions
    assert tok.decode([chat.input_ids[i] for i in turn]) == "yes"
    assert tok.decode([chat.input_ids[turn[-1] + 1]]) == "<|eot_id|>"


def test_generation_prompt_has_no_assistant_span(tiny_tokenizers):
    tok, family = _tok(tiny_tokenizers, "qwen3")
    chat = tokenize_chat(tok, family, CONV[:2], add_generation_prompt=True)
    assert chat.assistant_positions == []
    assert chat.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_embedded_template_positions(embedded_model):
    conv = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."}]
    chat = embedded_model.tokenize(conv)
    tok = embedded_model.tokenizer
    # SmolLM2's ChatML template adds its default system turn (tokens 0-20), the user turn (21-32),
    # then "<|im_start|>", "ass", "istant", "\n" (33-36): the answer is tokens 37-43.
    assert chat.assistant_positions == [[37, 38, 39, 40, 41, 42, 43]]
    assert [tok.decode([chat.input_ids[i]]) for i in chat.positions()] == \
        ["The", " capital", " of", " France", " is", " Paris", "."]
    assert tok.decode([chat.input_ids[44]]) == "<|im_end|>"


@pytest.mark.parametrize("conv, message", [
    ([], "is empty"),
    ([{"role": "user"}], "'role' and 'content'"),
    ([{"role": "narrator", "content": "x"}], "not one of system/user/assistant"),
    ([{"role": "user", "content": 3}], "must be a string"),
])
def test_bad_conversations(conv, message):
    with pytest.raises(ValueError, match=message):
        validate_conversation(conv)


def test_missing_assistant_turn_is_named():
    with pytest.raises(ValueError, match="conversation 4 has no assistant turn"):
        validate_conversation([{"role": "user", "content": "hi"}], index=4, need_assistant=True)


def test_turn_index_out_of_range(tiny_tokenizers):
    tok, family = _tok(tiny_tokenizers, "llama")
    chat = tokenize_chat(tok, family, CONV)
    with pytest.raises(ValueError, match="turns=5 but the conversation has 2"):
        chat.positions(5)
