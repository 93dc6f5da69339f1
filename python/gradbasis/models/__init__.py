"""Models: every architecture of the paper, one C++ engine underneath."""

from .activations import ACTIVATIONS, Activation
from .base import DenseLayer, Model, ParamSpec
from .basis import BasisModel
from .mlp import MLP, SkipMLP
from .resnet import PreActResidualStack, ResNet

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BasisModel",
    "DenseLayer",
    "MLP",
    "Model",
    "ParamSpec",
    "PreActResidualStack",
    "ResNet",
    "SkipMLP",
]
