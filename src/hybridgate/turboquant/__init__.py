"""TurboQuant (Zandieh, Daliri, Hadian, Mirrokni, arXiv 2504.19874): online vector
quantization within a small constant of the distortion-rate limit, no calibration.

    codebook   Lloyd-Max centroids for a rotated unit vector's coordinates
    rotation   random rotations: dense QR-orthogonal, or randomized Hadamard
    packing    b-bit indices packed into bytes (memory figures are true)
    quantizer  TurboQuant_mse and TurboQuant_prod (mse at b-1 bits + a 1-bit QJL sketch)
    index      a compressed inner-product index: online adds, scores from the codes
    mixed      outlier channels at more bits than the rest (the paper's KV setting)
"""

from hybridgate.turboquant.codebook import Codebook, lloyd_max
from hybridgate.turboquant.index import TurboQuantIndex
from hybridgate.turboquant.mixed import TurboQuantMixed
from hybridgate.turboquant.packing import pack, unpack
from hybridgate.turboquant.quantizer import TurboQuantMSE, TurboQuantProd

__all__ = ["Codebook", "TurboQuantIndex", "TurboQuantMSE", "TurboQuantMixed", "TurboQuantProd",
           "lloyd_max", "pack", "unpack"]
