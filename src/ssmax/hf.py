"""SSMax for Hugging Face `transformers` models, through the library's attention registry.

    import ssmax.hf
    model = LlamaForCausalLM(config)        # or any from_pretrained causal LM that uses SDPA
    ssmax.hf.enable(model)                  # one learned s per layer and query head

`enable` registers an attention function named "ssmax" (and its mask function, the library's
SDPA mask) in `transformers.AttentionInterface` / `AttentionMaskInterface`, switches the model to
it, and gives every attention module a parameter ``ssmax_s`` of shape (num_attention_heads,).
The function multiplies each query by ``s_h log n`` and hands the rest to the library's own SDPA
attention: SSMax costs one multiply of the queries (the paper's implementation note).

n is the number of keys a query sees, ``position_ids + 1``, so it restarts at every document of a
packed sequence, follows each step of cached decoding, and counts only real tokens of a
left-padded batch whose position_ids come from the attention mask (as `generate` builds them). A
sliding-window layer sees at most ``window`` keys: ``n = min(position + 1, window)``.

The default ``s_init = 1 / log T`` (T: the model's training length, ``max_position_embeddings``
unless given) makes the factor exactly 1 at position T, so switching a pretrained softmax model
to SSMax leaves its output at that position unchanged (the paper's "switch after pretraining").

A model saved after `enable` carries ``ssmax_s`` in its weights and ``config.ssmax`` in its
config; load it back with `from_pretrained` here (a plain ``from_pretrained`` would drop s).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Optional

import torch
from torch import Tensor, nn

try:
    import transformers
    from transformers import AttentionInterface, PreTrainedModel
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
except ImportError as err:  # pragma: no cover - the hf extra is missing
    raise ImportError("ssmax.hf needs transformers: pip install -e '.[hf]' (transformers==5.23.0)") from err

__all__ = ["ATTENTION_NAME", "PARAM_NAME", "CONFIG_KEY", "enable", "from_pretrained", "register", "key_counts",
           "ssmax_attention_forward", "scale_parameters"]

ATTENTION_NAME = "ssmax"
PARAM_NAME = "ssmax_s"  # the attribute (and state_dict suffix) of s on each attention module
CONFIG_KEY = "ssmax"  # config.ssmax = {"s_init", "learn_s", "train_len"}: saved with the config
# layer kinds whose n this module knows how to count
SUPPORTED_LAYER_TYPES = ("full_attention", "sliding_attention")


def register() -> None:
    """Put the "ssmax" attention function and its mask function (the SDPA mask: SSMax only
    rescales the queries, so the mask is SDPA's) into the library's registries. Idempotent."""
    AttentionInterface.register(ATTENTION_NAME, ssmax_attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


def key_counts(position_ids: Tensor, sliding_window: Optional[int] = None) -> Tensor:
    """n, the number of keys each query sees: ``position_ids + 1`` (at least 1), at most
    ``sliding_window`` in a sliding-window layer (its mask keeps the last ``window`` keys)."""
    n = (position_ids + 1).clamp(min=1)
    if sliding_window is not None:
        n = n.clamp(max=int(sliding_window))
    return n.to(torch.float32)


def ssmax_attention_forward(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                            attention_mask: Optional[Tensor], **kwargs: Any) -> tuple[Tensor, Optional[Tensor]]:
    """The registered attention function: queries (B, H, q, D) times ``s_h log n``, then SDPA.

    Needs the ``position_ids`` that Llama-style decoder layers pass to their attention (B or 1,
    q); raises a ValueError naming what is missing otherwise."""
    s = getattr(module, PARAM_NAME, None)
    if s is None:
        raise ValueError(f"{type(module).__name__} has no {PARAM_NAME}: call ssmax.hf.enable(model) "
                         f"instead of setting attn_implementation='{ATTENTION_NAME}' by hand")
    if kwargs.get("is_causal") is False or getattr(module, "is_causal", True) is False:
        raise ValueError(f"ssmax attention counts n for causal self-attention only; {type(module).__name__} "
                         f"is not causal")
    position_ids = kwargs.get("position_ids")
    if position_ids is None:
        raise ValueError(f"ssmax attention needs position_ids (n = position + 1) but {type(module).__name__} "
                         f"was called without them; pass position_ids to the model")
    if position_ids.dim() != 2 or position_ids.shape[-1] != query.shape[2]:
        raise ValueError(f"ssmax attention needs position_ids of shape (batch, {query.shape[2]}) (one per "
                         f"query); got shape {tuple(position_ids.shape)}")
    if type(kwargs.get("cache")).__name__ == "PagedAttentionCache":
        raise ValueError("ssmax attention does not support paged caches (continuous batching); use generate()")
    n = key_counts(position_ids, kwargs.get("sliding_window"))  # (B or 1, q)
    factor = s.float()[None, :, None, None] * torch.log(n)[:, None, :, None]  # (B or 1, H, q, 1)
    return sdpa_attention_forward(module, query * factor.to(query.dtype), key, value, attention_mask, **kwargs)


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules of a decoder: they hold ``layer_idx`` and ``head_dim`` and
    call the attention interface (Llama, Qwen2, Mistral and the many models built like them)."""
    return [m for m in model.modules()
            if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx") and hasattr(m, "head_dim")]


def _text_config(model: nn.Module):
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _check_supported(model: nn.Module) -> list[nn.Module]:
    """The attention modules, or a ValueError saying why SSMax cannot be put into this model."""
    name = type(model).__name__
    if not isinstance(model, PreTrainedModel):
        raise ValueError(f"model must be a transformers PreTrainedModel; got {name}")
    config = _text_config(model)
    if getattr(config, "is_encoder_decoder", False) or not getattr(config, "is_causal", True):
        raise ValueError(f"ssmax.hf supports causal decoders only (n = position + 1); {name} is not one")
    if not model._can_set_attn_implementation():
        raise ValueError(f"{name} does not dispatch through transformers.AttentionInterface; ssmax.hf cannot reach "
                         f"its attention")
    if not getattr(model, "_supports_sdpa", False):
        raise ValueError(f"{name} does not support SDPA attention, which ssmax.hf delegates to")
    if getattr(config, "attention_chunk_size", None) is not None:
        raise ValueError(f"{name} uses chunked attention (attention_chunk_size={config.attention_chunk_size}); "
                         f"ssmax.hf supports full and sliding-window attention only")
    other = sorted(set(getattr(config, "layer_types", None) or ()) - set(SUPPORTED_LAYER_TYPES))
    if other:
        raise ValueError(f"{name} has layer types {other}; ssmax.hf supports {list(SUPPORTED_LAYER_TYPES)}")
    modules = _attention_modules(model)
    if not modules:
        raise ValueError(f"found no attention module (with layer_idx and head_dim) in {name}")
    return modules


def _padding_hook(model: nn.Module):
    """A forward pre-hook that refuses inputs on which n and the mask would disagree: a padded
    batch without position_ids (the model would number the pads too, and n would count them),
    and packed sequences with the cache on (transformers then builds no block-diagonal mask)."""
    signature = inspect.signature(model.forward)

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        bound = signature.bind_partial(*args, **kwargs).arguments
        bound = {**bound, **bound.get("kwargs", {})}
        mask, positions = bound.get("attention_mask"), bound.get("position_ids")
        use_cache = bound.get("use_cache")
        if use_cache is None:
            use_cache = getattr(module.config, "use_cache", False)
        if (torch.is_tensor(positions) and positions.dim() == 2 and positions.shape[-1] > 1 and mask is None
                and bound.get("past_key_values") is None and use_cache
                and bool((positions.diff(dim=-1) != 1).any())):
            raise ValueError("position_ids restart (packed sequences) but use_cache is on, so transformers builds no "
                             "block-diagonal mask and the documents would see each other: pass use_cache=False")
        if positions is not None or not torch.is_tensor(mask) or mask.dim() != 2:
            return
        real = mask.bool()
        # a pad before a real token (left padding or a hole) shifts every later position
        if bool((real[:, 1:] & ~real[:, :-1]).any()):
            raise ValueError("attention_mask has padding before real tokens but no position_ids were given: "
                             "pass position_ids=(attention_mask.cumsum(-1) - 1).clamp(min=0) so that n counts "
                             "real tokens only (generate() does this)")
    return hook


def _add_s(model: nn.Module, modules: list[nn.Module], s_init: float, learn_s: bool) -> None:
    heads = _text_config(model).num_attention_heads
    for module in modules:
        ref = next(module.parameters())
        value = torch.full((heads,), float(s_init), dtype=ref.dtype, device=ref.device)
        if PARAM_NAME in module._parameters:
            del module._parameters[PARAM_NAME]
        if PARAM_NAME in module._buffers:
            del module._buffers[PARAM_NAME]
        if learn_s:
            module.register_parameter(PARAM_NAME, nn.Parameter(value))
        else:
            module.register_buffer(PARAM_NAME, value)


def _finish(model: nn.Module) -> None:
    model.set_attn_implementation(ATTENTION_NAME)
    if not getattr(model, "_ssmax_hook", None):
        model._ssmax_hook = model.register_forward_pre_hook(_padding_hook(model), with_kwargs=True)


def enable(model: nn.Module, s_init: Optional[float] = None, learn_s: bool = True, *,
           train_len: Optional[int] = None) -> nn.Module:
    """Switch a transformers causal LM to SSMax attention in place and return it.

    Every attention module gets ``ssmax_s`` (one value per query head): an ``nn.Parameter`` if
    ``learn_s`` (so optimizers, ``state_dict`` and ``save_pretrained`` carry it), else a buffer
    (fixed s, still saved). ``s_init`` defaults to ``1 / log(train_len)``, with ``train_len``
    defaulting to ``config.max_position_embeddings``: the factor ``s log n`` is then 1 at
    n = train_len. Calling it again resets s. Unsupported models raise a one-line ValueError.
    """
    register()
    modules = _check_supported(model)
    config = _text_config(model)
    T = config.max_position_embeddings if train_len is None else train_len
    if isinstance(T, bool) or not isinstance(T, int) or T < 2:
        raise ValueError(f"train_len must be an integer >= 2 (the training length T); got {T!r}")
    if s_init is None:
        s_init = 1.0 / math.log(T)
    if isinstance(s_init, bool) or not isinstance(s_init, (int, float)) or not (math.isfinite(s_init) and s_init >= 0):
        raise ValueError(f"s_init must be a finite number >= 0; got {s_init!r}")
    if not isinstance(learn_s, bool):
        raise ValueError(f"learn_s must be True or False; got {learn_s!r}")
    _add_s(model, modules, s_init, learn_s)
    setattr(config, CONFIG_KEY, {"s_init": float(s_init), "learn_s": learn_s, "train_len": T})
    if config is not model.config:
        setattr(model.config, CONFIG_KEY, getattr(config, CONFIG_KEY))
    _finish(model)
    return model


def scale_parameters(model: nn.Module) -> Tensor:
    """The s of every layer, shape (n_layer, n_heads), as float32 on the CPU."""
    values = [getattr(m, PARAM_NAME) for m in _attention_modules(model) if hasattr(m, PARAM_NAME)]
    if not values:
        raise ValueError("this model has no ssmax_s: call ssmax.hf.enable(model) first")
    return torch.stack([v.detach().float().cpu() for v in values])


_SUBCLASSES: dict[type, type] = {}


def _with_s_at_init(model_class: type) -> type:
    """A subclass of ``model_class`` (same name) that adds ``ssmax_s`` in ``__init__``, so that
    ``from_pretrained`` finds a place for the saved s values."""
    if model_class not in _SUBCLASSES:
        def __init__(self, config, *args, **kwargs):
            model_class.__init__(self, config, *args, **kwargs)
            settings = getattr(_text_config(self), CONFIG_KEY)
            _add_s(self, _check_supported(self), settings["s_init"], settings["learn_s"])

        _SUBCLASSES[model_class] = type(model_class.__name__, (model_class,),
                                        {"__init__": __init__, "__module__": model_class.__module__})
    return _SUBCLASSES[model_class]


def from_pretrained(path: str, model_class: Optional[type] = None, **kwargs: Any) -> nn.Module:
    """Load a model saved after `enable`, with its s (``model_class`` defaults to the
    ``AutoModelForCausalLM`` class of the saved config). A checkpoint saved without SSMax is a
    ValueError: load it as usual and call `enable`, which starts s at ``s_init``."""
    register()
    config = kwargs.pop("config", None) or transformers.AutoConfig.from_pretrained(path)
    settings = getattr(config.get_text_config() if hasattr(config, "get_text_config") else config, CONFIG_KEY, None)
    if not isinstance(settings, dict) or not {"s_init", "learn_s"} <= set(settings):
        raise ValueError(f"{path} was not saved after ssmax.hf.enable (its config has no '{CONFIG_KEY}' entry): "
                         f"load it with from_pretrained and call ssmax.hf.enable(model)")
    if model_class is None or model_class.__name__.startswith("Auto"):
        auto = model_class or transformers.AutoModelForCausalLM
        model_class = auto._model_mapping[type(config)]
    model, info = _with_s_at_init(model_class).from_pretrained(
        path, config=config, attn_implementation=ATTENTION_NAME, output_loading_info=True, **kwargs)
    missing = [k for k in info.get("missing_keys", ()) if k.endswith(PARAM_NAME)]
    if missing:
        raise ValueError(f"{path} has no saved s for {len(missing)} attention layers (e.g. {missing[0]})")
    _finish(model)
    return model
