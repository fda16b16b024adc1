"""Small API gaps, each a clear error that says what to write instead (or, for an empty answer, a named cell)."""

from __future__ import annotations

import math

import pytest
import torch

from persona_probe import Cap, Steer, project
from persona_probe.interventions.single import MAX_STEER

CONV = [{"role": "user", "content": "Hi"}]


def test_generate_refuses_a_conversation_that_already_ends_with_an_answer(tiny_model):
    with pytest.raises(ValueError, match="conversation 0 already ends with an assistant turn; generation appends"):
        tiny_model.generate([CONV + [{"role": "assistant", "content": "Hello!"}]], max_new_tokens=2)


def test_generate_with_a_string_says_to_wrap_it(tiny_model):
    with pytest.raises(ValueError, match=r"takes a list of conversations, not a string; wrap the text: "
                                         r"\[\[\{'role': 'user', 'content': 'text'\}\]\]"):
        tiny_model.generate("text")
    with pytest.raises(ValueError, match="got one conversation .* wrap it in a list"):
        tiny_model.generate(CONV)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 'eight'"):
        tiny_model.generate([CONV], max_new_tokens="eight")


def test_a_threshold_given_as_a_string_says_to_drop_the_quotes():
    with pytest.raises(ValueError, match="Cap tau must be a number, got the string '2.0'; write it without quotes"):
        Cap(torch.ones(4), [0], tau="2.0")
    with pytest.raises(ValueError, match="got the string"):
        Cap(torch.ones(4), [0, 1], tau=[1.0, "2"])
    assert Cap(torch.ones(4), [0, 1], tau=__import__("numpy").float32(2.0)).tau == (2.0, 2.0)


def test_a_steering_coefficient_that_overflows_is_refused(tiny_model):
    v = torch.ones(tiny_model.d_model) / math.sqrt(tiny_model.d_model)
    with pytest.raises(ValueError, match=r"Steer coef 1e\+30 .* overflows float32 .* generation returns empty text"):
        Steer(v, [1], coef=1e30)
    assert Steer(v, [1], coef=MAX_STEER / 10).coef == MAX_STEER / 10  # large but representable: allowed


def test_projection_on_a_zero_axis_is_an_error_not_nan():
    acts = torch.randn(3, 2, 8)
    with pytest.raises(ValueError, match="the axis at layer 1 is all zeros, so a projection on it is undefined"):
        project(acts, torch.zeros(2, 8), layer=1)
    with pytest.raises(ValueError, match="all zeros"):
        project(acts[:, 0], torch.zeros(8))
    assert torch.isfinite(project(acts, torch.ones(2, 8), layer=1)).all()
