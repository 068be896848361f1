"""Presentation contexts the SCP accepts: every storage SOP class pynetdicom knows, plus
Verification, each with the transfer syntaxes ultrasound equipment sends.

Data are stored as received, so accepting a compressed syntax costs nothing here; decoding
happens later, in ai/, for the clips that are processed.
"""

from __future__ import annotations

from pydicom import uid
from pynetdicom import AllStoragePresentationContexts, build_context
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

# Order matters only when a requestor offers several in one context: uncompressed first keeps
# the bytes closest to what most archives expect; compressed ones follow.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.HTJ2KLossless,
    uid.HTJ2KLosslessRPCL,
    uid.HTJ2K,
    uid.RLELossless,
)


def supported_contexts() -> list[PresentationContext]:
    contexts = [build_context(Verification)]
    contexts += [
        build_context(str(cx.abstract_syntax), list(TRANSFER_SYNTAXES))
        for cx in AllStoragePresentationContexts
    ]
    return contexts
