"""Built-in plugin: the ``mlp``, ``conv`` and ``resnet`` encoders and decoders."""

from __future__ import annotations

from vaekit import hookimpl


@hookimpl
def register_encoders(register):
    """Register the built-in encoders (by import path: nothing is imported until used)."""
    register("mlp", "vaekit.builtin.nets.mlp:MLPEncoder")
    register("conv", "vaekit.builtin.nets.conv:conv_encoder")
    register("resnet", "vaekit.builtin.nets.resnet:resnet_encoder")


@hookimpl
def register_decoders(register):
    """Register the built-in decoders (by import path)."""
    register("mlp", "vaekit.builtin.nets.mlp:MLPDecoder")
    register("conv", "vaekit.builtin.nets.conv:conv_decoder")
    register("resnet", "vaekit.builtin.nets.resnet:resnet_decoder")
