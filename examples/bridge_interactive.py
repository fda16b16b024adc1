# %% [markdown]
# # Interactive use with TransformerLens' `TransformerBridge`
#
# `persona_probe` extracts and edits activations with nnsight. For poking around
# with TransformerLens hook names (`run_with_cache`, `run_with_hooks`) we boot a
# `TransformerBridge` over the *same weights*, offline, with no weight
# processing, so `blocks.{l}.hook_resid_post` is exactly the residual stream our
# `ProbeModel` reads (checked in `tests/test_bridge.py`).
#
# Run cell by cell in VS Code / Jupyter (`# %%`), or as a script:
# `python examples/bridge_interactive.py`.

# %%
import torch

from persona_probe import Cap, load_model, project
from persona_probe.bridge import boot_bridge, conversation_residuals

model = load_model("embedded")  # SmolLM2-135M-Instruct: 30 layers, d=576
bridge = boot_bridge(model)  # shares weights, copies the module tree
print(bridge.cfg.n_layers, bridge.cfg.d_model)

# %% A toy axis: "helpful assistant" answers minus "pirate role-play" answers
assistant = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How do I boil an egg?", "Place the egg in boiling water for about nine minutes."),
]]
pirate = [[{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": c[0]["content"]},
           {"role": "assistant", "content": "Arr, matey! " + c[1]["content"] + " Yo ho!"}] for c in assistant]
acts_a = model.response_activations(assistant, progress=False)
acts_p = model.response_activations(pirate, progress=False)
axis = acts_a.mean(0) - acts_p.mean(0)  # [n_layers, d]
layer = model.target_layer
print("layer", layer, "assistant", project(acts_a, axis, layer), "pirate", project(acts_p, axis, layer))

# %% Per-token drift along the axis, read through the bridge
resid, chat = conversation_residuals(model, bridge, pirate[0], layers=[layer])
u = axis[layer] / axis[layer].norm()
per_token = resid[0] @ u
for pos in chat.positions("all"):
    print(f"{model.tokenizer.decode([chat.input_ids[pos]])!r:>14} {per_token[pos]:+8.2f}")

# %% TransformerLens-style hooks: cap the projection from below at one layer, by hand
tau = project(acts_a, axis, layer).min().item()


def floor_hook(resid_post, hook):
    proj = resid_post.float() @ u
    return (resid_post.float() + u * torch.clamp(tau - proj, min=0)[..., None]).to(resid_post.dtype)


ids = torch.tensor([chat.input_ids])
logits = bridge.run_with_hooks(ids, fwd_hooks=[(f"blocks.{layer}.hook_resid_post", floor_hook)])
print("capped logits", tuple(logits.shape))

# %% The same edit the project way (nnsight, works remotely too) gives the same stream
capped, _ = model.token_activations(pirate[0], layers=[layer],
                                    interventions=[Cap(axis, [layer], tau=tau, mode="floor")])
print("min projection after cap:", (capped[0] @ u).min().item(), "(tau =", tau, ", up to float rounding)")
