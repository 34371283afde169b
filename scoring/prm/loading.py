"""Loading a PRM and its tokenizer from a local directory, once per worker process.

Everything goes through ``from_pretrained`` with ``local_files_only=True``: a worker never
downloads weights at run time, and the tests load their tiny models through this same path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from scoring.prm import qwen_prm
from scoring.prm.contract import ModelLoadError

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
MODEL_CLASSES = ("auto", "token_classification", "causal_lm", "base", "qwen2_prm")
# The weight files a checkpoint may ship: safetensors, or PyTorch pickles (Skywork-o1-Open-PRM's
# official repos ship ``pytorch_model.bin``); sharded names match too.
WEIGHT_FILE_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


def resolve_device(device: str) -> torch.device:
    """``"auto"`` is CUDA when there is one, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but torch sees no CUDA device")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"``: bf16 on CUDA (what the PRMs were trained in), fp32 on CPU (exact and fast
    enough for tiny models; CPU bf16 matmuls are slow)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ModelLoadError(
            f"unknown dtype {dtype!r}; use one of auto, {', '.join(DTYPES)}"
        ) from None


def require_model_dir(model_path: str | os.PathLike[str] | None) -> Path:
    """The model directory, or a ModelLoadError naming the path that is not there."""
    if not model_path:
        raise ModelLoadError("this backend needs a model path (a local directory)")
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise ModelLoadError(f"model path {str(path)!r} does not exist or is not a directory")
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"model path {str(path)!r} has no config.json")
    return path


def weight_files(model_path: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint's weight files, as transformers picks them: the safetensors files when
    there are any (a repo that ships both kinds loads those), else the ``pytorch_model*.bin``."""
    path = Path(model_path)
    for pattern in WEIGHT_FILE_PATTERNS:
        files = sorted(path.glob(pattern))
        if files:
            return files
    return []


def read_tensors(model_path: str | os.PathLike[str], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose key contains ``prefix`` in the checkpoint's weight files (either
    kind), keyed by what follows the prefix: ``read_tensors(p, "v_head.summary.")`` gives
    ``{"weight": ..., "bias": ...}`` whether the file is safetensors or ``pytorch_model.bin``."""
    from safetensors import safe_open

    found: dict[str, torch.Tensor] = {}
    for file in weight_files(model_path):
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    if prefix in key:
                        found[key.split(prefix, 1)[1]] = f.get_tensor(key)
            continue
        for key, tensor in _load_pickle(file).items():
            if prefix in key:
                found[key.split(prefix, 1)[1]] = tensor
    return found


def _load_pickle(file: Path) -> dict[str, torch.Tensor]:
    """A ``pytorch_model*.bin`` state dict. weights_only: a pickle from a checkpoint never runs
    code here; mmap: a 15 GB file is not read into memory to find two small tensors (a file in
    the legacy, non-zip format cannot be mapped and is read whole)."""
    try:
        try:
            state = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises many kinds for a bad file)
        raise ModelLoadError(f"cannot read the weight file {str(file)!r}: {exc}") from exc
    return dict(state)


def refuse_missing(path: Path | str, what: str, missing: Iterable[str]) -> None:
    """A head the backend needs that is not in the checkpoint would be initialised at random
    by transformers (plausible scores, no error): refuse, naming the path and the keys.

    >>> refuse_missing("/m", "Qwen2ForTokenClassification", [])
    >>> refuse_missing("/m", "Qwen2ForTokenClassification", ["score.weight", "score.bias"])
    Traceback (most recent call last):
    ...
    scoring.prm.contract.ModelLoadError: '/m': Qwen2ForTokenClassification needs weights that are not in the checkpoint: ['score.bias', 'score.weight'] (they would be random); check the backend and its params (head, model_class) against the checkpoint
    """
    keys = sorted(missing)
    if keys:
        raise ModelLoadError(
            f"{str(path)!r}: {what} needs weights that are not in the checkpoint: {keys} "
            "(they would be random); check the backend and its params (head, model_class) "
            "against the checkpoint"
        )


def load_tokenizer(model_path: str | os.PathLike[str], *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    path = require_model_dir(model_path)
    try:
        return AutoTokenizer.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {str(path)!r}: {exc}") from exc


def _auto_class(model_class: str, config: Any, *, trust_remote_code: bool = False) -> Any:
    import transformers as tf

    if model_class == "auto":
        architectures = getattr(config, "architectures", None) or []
        if any(a.endswith("ForTokenClassification") for a in architectures):
            model_class = "token_classification"
        elif any(a.endswith("ForCausalLM") for a in architectures):
            model_class = "causal_lm"
        elif qwen_prm.ARCHITECTURE in architectures and not trust_remote_code:
            # Qwen2.5-Math-PRM: built in (AutoModel without its remote file would load a bare
            # decoder and drop the head); with trust_remote_code, the checkpoint's own file.
            model_class = "qwen2_prm"
        else:
            # e.g. Skywork's Qwen2ForPrmModel: the decoder; its v_head is read by the backend.
            model_class = "base"
    if model_class == "qwen2_prm":
        return qwen_prm.process_reward_model_class()
    return {
        "token_classification": tf.AutoModelForTokenClassification,
        "causal_lm": tf.AutoModelForCausalLM,
        "base": tf.AutoModel,
    }[model_class]


def _dtype_kwarg() -> str:
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return "dtype" if major >= 5 else "torch_dtype"


def load_model(
    model_path: str | os.PathLike[str],
    *,
    model_class: str = "auto",
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
    attn_implementation: str | None = "sdpa",
) -> Any:
    """Load weights once, in eval mode, on ``device`` in ``dtype``. SDPA attention by default
    (flash / memory-efficient kernels on CUDA); a model whose code lacks it falls back."""
    from transformers import AutoConfig

    if model_class not in MODEL_CLASSES:
        raise ModelLoadError(f"unknown model_class {model_class!r}; use one of {MODEL_CLASSES}")
    path = require_model_dir(model_path)
    try:
        config = AutoConfig.from_pretrained(
            str(path), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the config in {str(path)!r}: {exc}") from exc
    auto = _auto_class(model_class, config, trust_remote_code=trust_remote_code)
    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "output_loading_info": True,
        "trust_remote_code": trust_remote_code,
        _dtype_kwarg(): dtype,
    }
    try:
        try:
            model, info = auto.from_pretrained(
                str(path), attn_implementation=attn_implementation, **kwargs
            )
        except ValueError as exc:
            if attn_implementation is None or "attn" not in str(exc).lower():
                raise
            model, info = auto.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load a model from {str(path)!r}: {exc}") from exc
    refuse_missing(path, type(model).__name__, info.get("missing_keys") or ())
    return model.to(device).eval()


def pad_token_id(tokenizer: Any) -> int:
    """Padding id for right padding; its value never matters (masked), it must only exist."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0
