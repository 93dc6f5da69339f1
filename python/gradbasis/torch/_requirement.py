"""gradbasis.torch needs PyTorch: a clear error, naming the install command, where it is missing."""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without torch
    raise ImportError(
        "gradbasis.torch needs PyTorch, which is not installed: pip install torch "
        '(or pip install "gradbasis[torch]")'
    ) from exc
