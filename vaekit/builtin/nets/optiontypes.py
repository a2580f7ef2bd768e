"""The built-in networks' options, declared once: type and one-line help each.

``Annotated[T, "help"]`` is what ``vaekit plugins show conv`` lists; a ``Literal`` names
the values ``--encoder-opt`` accepts (anything else is refused before a network is
built). The factories (:mod:`.mlp`, :mod:`.conv`, :mod:`.resnet`) use these in their
signatures, so the encoder and the decoder of a family describe an option alike.
"""

from __future__ import annotations

from typing import Annotated, Literal

#: The normalisations of the ResNet networks (``blocks.NORMS`` is read from this).
NormName = Literal["batch", "layer", "identity"]
#: The residual blocks of the ResNet networks.
BlockName = Literal["bottleneck", "full"]

Width = Annotated[int, "channels of the first stage; doubled each stage, at most 4x"]
ConvHidden = Annotated[int, "units of the fully connected layer next to the latent (0: none)"]
ConvArch = Annotated[int, "network version: 2 (since vaekit 0.2) or 1 (vaekit 0.1.0's)"]
ResNetArch = Annotated[
    int, "network version: 3 (since vaekit 0.4), 2 (vaekit 0.2-0.3's) or 1 (vaekit 0.1.0's)"
]
Blocks = Annotated[int, "residual blocks per stage that has them (0: none)"]
Norm = Annotated[NormName, "normalisation: layer (LayerNorm), batch (BatchNorm), identity (none)"]
Block = Annotated[
    BlockName, "residual block: bottleneck (3x3 conv at half the channels, 1x1) or full (2x 3x3)"
]
ResStages = Annotated[int, "how many of the smallest-resolution stages have residual blocks"]
MLPHidden = Annotated[int, "units of each hidden layer"]
MLPDepth = Annotated[int, "number of hidden layers"]
