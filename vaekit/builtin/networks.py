"""Built-in plugin: the ``mlp``, ``conv`` and ``resnet`` encoders and decoders."""

from __future__ import annotations

from vaekit import hookimpl


@hookimpl
def register_encoders(register):
    """Register the built-in encoders."""
    from vaekit.builtin.nets.conv import conv_encoder
    from vaekit.builtin.nets.mlp import MLPEncoder
    from vaekit.builtin.nets.resnet import resnet_encoder

    register("mlp", MLPEncoder)
    register("conv", conv_encoder)
    register("resnet", resnet_encoder)


@hookimpl
def register_decoders(register):
    """Register the built-in decoders."""
    from vaekit.builtin.nets.conv import conv_decoder
    from vaekit.builtin.nets.mlp import MLPDecoder
    from vaekit.builtin.nets.resnet import resnet_decoder

    register("mlp", MLPDecoder)
    register("conv", conv_decoder)
    register("resnet", resnet_decoder)
