"""Built-in plugin: the ``mlp``, ``conv`` and ``resnet`` encoders and decoders."""

from __future__ import annotations

from vaekit import hookimpl


@hookimpl
def register_encoders(register):
    """Register the built-in encoders."""
    from vaekit.builtin.nets.conv import ConvEncoder
    from vaekit.builtin.nets.mlp import MLPEncoder
    from vaekit.builtin.nets.resnet import ResNetEncoder

    register("mlp", MLPEncoder)
    register("conv", ConvEncoder)
    register("resnet", ResNetEncoder)


@hookimpl
def register_decoders(register):
    """Register the built-in decoders."""
    from vaekit.builtin.nets.conv import ConvDecoder
    from vaekit.builtin.nets.mlp import MLPDecoder
    from vaekit.builtin.nets.resnet import ResNetDecoder

    register("mlp", MLPDecoder)
    register("conv", ConvDecoder)
    register("resnet", ResNetDecoder)
