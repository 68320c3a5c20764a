"""The cross-check: the book's pretraining and length-generalization comparison, softmax (a) vs
SSMax (b), rerun on Hugging Face's `LlamaForCausalLM` through `ssmax.hf`.

Same corpus, context T, steps, batch, learning-rate schedule and seeds (so the same data in the
same order) as ``pretrain-{a,b}`` and ``lengthgen-{a,b}`` of a profile; the model is the
library's Llama at our model's shape (`llama_config`), with its own RoPE, attention, weight
initialisation and code. (b) starts s where our (b) does (``GPTConfig.s_init``).

    hf-pretrain-{a,b}    train (`ssmax.train.train` drives the model through `HFLanguageModel`)
    hf-lengthgen-{a,b}   per-position loss to 16T on the held-out documents of ``lengthgen-*``

The book's page judges them (`ssmax.book.crosscheck`) beside our model's, by the book's one procedure.
Importing this module does not import transformers; building or running a model does.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator, Optional

import torch
from torch import Tensor, nn

from . import experiments as ex
from . import results as store
from .checkpoint import save_checkpoint
from .model import GPTConfig
from .train import TrainConfig, train

TRANSFORMERS_VERSION = "5.23.0"  # the `hf` extra's pin; part of every cross-check config
VARIANTS = ("a", "b")
SCALING = {"a": "softmax", "b": "ssmax"}


def llama_config(model: GPTConfig) -> dict:
    """`transformers.LlamaConfig` arguments for a Llama of our model's shape: byte vocabulary,
    layers, heads, width, SwiGLU width, RMSNorm epsilon, RoPE theta, untied embeddings, no
    biases; ``max_position_embeddings`` is the training length T."""
    return {"vocab_size": model.vocab_size, "hidden_size": model.n_embd, "intermediate_size": model.mlp_hidden,
            "num_hidden_layers": model.n_layer, "num_attention_heads": model.n_head,
            "num_key_value_heads": model.n_head, "max_position_embeddings": model.block_size,
            "rms_norm_eps": model.norm_eps, "rope_parameters": {"rope_type": "default", "rope_theta": model.rope_theta},
            "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "initializer_range": 0.02,
            "bos_token_id": None, "eos_token_id": None, "pad_token_id": None}


def _require_transformers():
    try:
        import transformers
    except ImportError as err:
        raise ValueError("the cross-check needs transformers: pip install -e '.[hf]'") from err
    if transformers.__version__ != TRANSFORMERS_VERSION:
        print(f"warning: the cross-check pins transformers {TRANSFORMERS_VERSION}; this is {transformers.__version__}",
              file=sys.stderr)
    return transformers


class HFLanguageModel(nn.Module):
    """A `LlamaForCausalLM` that the training loop and the evaluations call like a `GPT`:
    ``model(idx, rope_theta)`` -> logits, plus `param_groups`, `num_parameters`,
    `scale_parameters` and ``config`` (the `GPTConfig` it was built from)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.scaling not in SCALING.values() or config.position != "rope":
            raise ValueError(f"HFLanguageModel builds softmax or ssmax models with RoPE; got scaling={config.scaling!r}, "
                             f"position={config.position!r}")
        transformers = _require_transformers()
        from . import hf
        self.config = config
        self.p_n = None  # GPT's learned-pn table; the training loop looks for it
        self.llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(**llama_config(config)))
        self.llama.set_attn_implementation("sdpa")
        if config.scaling == "ssmax":
            hf.enable(self.llama, s_init=config.s_init, train_len=config.block_size)

    @contextlib.contextmanager
    def _rope_theta(self, theta: Optional[float]) -> Iterator[None]:
        """Evaluate with another RoPE base (the paper's theta x 50): the library's own rotary
        embedding, built for that base, replaces the model's for the call."""
        if theta is None or theta == self.config.rope_theta:
            yield
            return
        import transformers
        inner = self.llama.model
        cfg = transformers.LlamaConfig(**{**llama_config(self.config),
                                          "rope_parameters": {"rope_type": "default", "rope_theta": float(theta)}})
        trained = inner.rotary_emb
        inner.rotary_emb = type(trained)(cfg).to(trained.inv_freq.device)
        try:
            yield
        finally:
            inner.rotary_emb = trained

    def forward(self, idx: Tensor, rope_theta: Optional[float] = None, *, query_scale_fn=None, **kwargs: Any) -> Tensor:
        if query_scale_fn is not None or kwargs:
            raise ValueError(f"HFLanguageModel takes idx and rope_theta only; got query_scale_fn={query_scale_fn!r}, "
                             f"{sorted(kwargs)}")
        with self._rope_theta(rope_theta):
            return self.llama(input_ids=idx, use_cache=False).logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def param_groups(self, weight_decay: float) -> list[dict]:
        """As `GPT.param_groups`: decay matrices only; s and norm gains are never decayed."""
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def scale_parameters(self) -> dict[str, Tensor]:
        if self.config.scaling != "ssmax":
            return {}
        from . import hf
        return {"s": hf.scale_parameters(self.llama)}


def gpt_state_dict(model: HFLanguageModel) -> dict[str, Tensor]:
    """The Llama's weights as a state dict of our `GPT` of the same config (q, k, v stacked into
    ``qkv``, gate and up into ``gate_up``): both then compute the same function, which is what
    makes the cross-check a check of the code and the initialisation, not of the architecture."""
    sd = {k.removeprefix("llama."): v for k, v in model.state_dict().items()}
    out = {"embed.weight": sd["model.embed_tokens.weight"], "norm.weight": sd["model.norm.weight"],
           "lm_head.weight": sd["lm_head.weight"]}
    for i in range(model.config.n_layer):
        p, q = f"model.layers.{i}.", f"blocks.{i}."
        out[q + "attn_norm.weight"] = sd[p + "input_layernorm.weight"]
        out[q + "mlp_norm.weight"] = sd[p + "post_attention_layernorm.weight"]
        out[q + "attn.qkv.weight"] = torch.cat([sd[p + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[q + "attn.proj.weight"] = sd[p + "self_attn.o_proj.weight"]
        out[q + "mlp.gate_up.weight"] = torch.cat([sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"]])
        out[q + "mlp.down.weight"] = sd[p + "mlp.down_proj.weight"]
        if p + "self_attn.ssmax_s" in sd:
            out[q + "attn.query_scale.s"] = sd[p + "self_attn.ssmax_s"]
    return out


# --- the experiments ------------------------------------------------------------------------

def _parts(name: str) -> tuple[str, str]:
    stage, variant = name.rsplit("-", 1)
    if name not in ex.CROSSCHECK_EXPERIMENTS:
        raise ValueError(f"unknown cross-check experiment {name!r}; allowed: {', '.join(ex.CROSSCHECK_EXPERIMENTS)}")
    return stage, variant


def experiment_config(name: str, profile: str, seed: int) -> ex.ExperimentConfig:
    """hf-pretrain-{a,b}: the TrainConfig of pretrain-{a,b} (same model shape, data, steps and
    schedule) with the Llama it builds; hf-lengthgen-{a,b}: the evaluation of lengthgen-{a,b}."""
    stage, variant = _parts(name)
    prof = ex.check_profile(profile)
    model = ex._model_config(prof, SCALING[variant])
    implementation = {"model": "transformers.LlamaForCausalLM", "transformers": TRANSFORMERS_VERSION,
                      "llama_config": llama_config(model),
                      "attention": "ssmax.hf" if variant == "b" else "sdpa"}
    if stage == "hf-pretrain":
        tc = TrainConfig(model=model, seed=seed, **prof.pretrain)
        return ex.ExperimentConfig(name, "hf_pretrain", train=tc, evaluation=implementation)
    key, h = ex._dep(f"hf-pretrain-{variant}", profile, seed)
    evaluation = {**ex.experiment_config(f"lengthgen-{variant}", profile, seed).evaluation}
    return ex.ExperimentConfig(name, "hf_lengthgen", init_from=key, evaluation=evaluation, depends_on={key: h})


def run_pretrain(config: ex.ExperimentConfig, profile: str, seed: int, device: torch.device,
                 progress: bool) -> tuple[dict, dict, str]:
    """Train (resumable, as every pretraining run) and store float16 weights for the evaluation;
    returns the metrics, the timing and the SHA-256 of the weights file. The checkpoint stays
    until `experiments.run` has written the results."""
    ckpt = store.checkpoints_root() / profile / f"{store.run_key(config.name, seed)}.pt"
    ex._discard_unusable_checkpoint(ckpt, store.config_hash(config.train))
    outcome = train(config.train, device=device, checkpoint_path=ckpt, progress=progress, build_model=HFLanguageModel)
    digest = save_checkpoint(store.weights_path(profile, config.name, seed),
                             {"model_config": outcome.model.config.to_dict(),
                              "state_dict": {k: v.detach().cpu().to(ex.WEIGHTS_DTYPE)
                                             for k, v in outcome.model.state_dict().items()}},
                             store.config_hash(config))
    return outcome.metrics, outcome.timing, digest


def load_model(name: str, profile: str, seed: int, device: torch.device) -> HFLanguageModel:
    """The trained Llama of hf-pretrain-{a,b}, checked and recorded as every loaded model is
    (`experiments.load_weights`)."""
    return ex.load_weights(name, profile, seed, device, build=HFLanguageModel)[0]


def run_lengthgen(config: ex.ExperimentConfig, profile: str, device: torch.device) -> dict:
    """The lengthgen evaluation (`experiments._run_lengthgen`) on the trained Llama."""
    name, seed = ex._split_key(config.init_from)
    return ex._run_lengthgen(config, profile, device, model=load_model(name, profile, seed, device))
