"""Presentation contexts the SCP accepts: every storage SOP class pynetdicom knows, plus
Verification and the Storage Commitment Push Model, each with the transfer syntaxes ultrasound
equipment sends.

Data are stored as received, so accepting a compressed syntax costs nothing here; decoding
happens later, in ai/, for the clips that are processed (video clips with PyAV, ai/video.py).
"""

from __future__ import annotations

from pydicom import uid
from pynetdicom import AllStoragePresentationContexts, build_context
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StorageCommitmentPushModel,
    Verification,
)

from ai.video import VIDEO_SYNTAXES

# Within a context the requestor's order decides: pynetdicom accepts the first syntax it offers
# that is listed here. Every syntax a scanner sends is listed, so none needs a transcode.
TRANSFER_SYNTAXES: tuple[str, ...] = (
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
    uid.DeflatedExplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    # Ultrasound clips as video: MPEG-2, MPEG-4 AVC/H.264 and HEVC/H.265, each also in its
    # fragmentable form (PS3.5 §8.2.5-8.2.8).
    *VIDEO_SYNTAXES,
)


def supported_contexts() -> list[PresentationContext]:
    contexts = [build_context(Verification), build_context(StorageCommitmentPushModel)]
    contexts += [
        build_context(str(cx.abstract_syntax), list(TRANSFER_SYNTAXES))
        for cx in AllStoragePresentationContexts
    ]
    return contexts
