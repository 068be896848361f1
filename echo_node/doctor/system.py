"""The machine under the node: data directory and disk, models, decoders, torch, TLS files.

The node runs no external program; what it needs from outside Python are native libraries
(image decoders, torch) and the files its settings name.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from echo_node.doctor.report import Check
from echo_node.settings import Settings
from echo_node.watermark import disk_space
from storage.files import FileStore

_GB = 1e9


def check_data_dir(store: FileStore, settings: Settings) -> list[Check]:
    missing = [
        path.name or str(path)
        for path in (store.root, store.instances, store.tmp, store.quarantine_dir)
        if not path.is_dir()
    ]
    if missing:
        return [
            Check(
                "data directory",
                "FAIL",
                f"{store.root}: missing {', '.join(missing)} (`echo-node serve` creates them)",
            )
        ]
    try:
        # Where received data are first written: same filesystem as instances/.
        with tempfile.NamedTemporaryFile(dir=store.tmp, prefix="doctor-") as probe:
            probe.write(b"echo-node doctor")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return [Check("data directory", "FAIL", f"{store.tmp} is not writable: {exc.strerror}")]
    return [Check("data directory", "OK", f"{store.root} is writable"), check_disk(store, settings)]


def check_disk(store: FileStore, settings: Settings) -> Check:
    """FAIL below the watermark (the node is refusing new data), WARN below the doctor's own
    earlier threshold."""
    space = disk_space(store.root, settings)
    if not space.ok:
        return Check(
            "disk space",
            "FAIL",
            f"{space.describe()} (disk_min_free_percent = {settings.disk_min_free_percent:g}, "
            f"disk_min_free_gb = {settings.disk_min_free_gb:g}): the node refuses new "
            "associations and STOW-RS until space is freed",
        )
    low = space.free < settings.doctor_disk_free_warn_gb * _GB
    return Check(
        "disk space",
        "WARN" if low else "OK",
        f"{space.describe()} (warning under doctor_disk_free_warn_gb = "
        f"{settings.doctor_disk_free_warn_gb:g})",
    )


def check_models(settings: Settings) -> Check:
    """Model files against the registry (``ai.models.verify``): changed files FAIL."""
    from ai.models.registry import default_registry
    from ai.models.verify import check_files

    directory = settings.resolved_models_dir
    checks = check_files(default_registry(), directory)
    installed = [check for check in checks if check.verdict != "missing"]
    changed = [check for check in checks if check.verdict == "changed"]
    unverified = [check for check in checks if check.verdict == "unverified"]
    required = [c.spec.name for c in checks if c.verdict == "missing" and not c.spec.optional]
    count = f"{len(installed)} of {len(checks)} installed in {directory}"
    if changed:
        return Check(
            "models",
            "FAIL",
            f"{count}; sha256 differs from the registry or import record",
            tuple(f"{c.spec.name}: {c.describe()}" for c in changed),
        )
    if unverified:
        return Check(
            "models",
            "WARN",
            f"{count}; no digest to check these against (re-import with `echo-node models import`)",
            tuple(c.spec.name for c in unverified),
        )
    note = f"; not installed (their pipelines report so): {', '.join(required)}" if required else ""
    return Check("models", "OK", f"{count}, sha256 verified{note}")


# Transfer syntaxes of ultrasound: JPEG baseline is what most scanners send.
_DECODERS = {
    "JPEGBaseline8BitDecoder": True,
    "RLELosslessDecoder": False,
    "JPEGLSLosslessDecoder": False,
    "JPEG2000Decoder": False,
}


def check_decoders() -> Check:
    from pydicom.pixels import decoders

    from ai.video import available

    absent = [name for name in _DECODERS if not getattr(decoders, name).is_available]
    if not available():
        absent.append("PyAV (MPEG-2, H.264, HEVC video)")
    if not absent:
        return Check(
            "image decoders",
            "OK",
            "JPEG baseline, RLE, JPEG-LS, JPEG 2000 and video (PyAV) available",
        )
    required = any(_DECODERS.get(name, False) for name in absent)
    return Check(
        "image decoders",
        "FAIL" if required else "WARN",
        "no plugin decodes these (pylibjpeg packages, av)",
        tuple(absent),
    )


def check_inference(settings: Settings) -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("inference", "FAIL", f"torch does not import: {exc}")
    cuda = torch.cuda.is_available()
    if settings.inference_device == "cuda" and not cuda:
        return Check("inference", "FAIL", "inference_device = cuda, but torch sees no CUDA device")
    device = (
        "cuda"
        if settings.inference_device == "cuda" or (settings.inference_device == "auto" and cuda)
        else "cpu"
    )
    from ai.models.backends import resolve

    backend = resolve(settings.inference_backend, torch.device(device))
    return Check(
        "inference", "OK", f"torch {torch.__version__}, models run on {device} with {backend}"
    )


def check_tls_files(settings: Settings) -> Check:
    named = [
        ("tls_certificate", settings.tls_certificate),
        ("tls_private_key", settings.tls_private_key),
        ("dimse_tls_certificate", settings.dimse_tls_certificate),
        ("dimse_tls_private_key", settings.dimse_tls_private_key),
        ("dimse_tls_ca_file", settings.dimse_tls_ca_file),
    ]
    for destination in settings.destinations:
        for key in ("tls_ca_file", "tls_certificate", "tls_private_key"):
            value = getattr(destination, key)
            named.append((f"destination {destination.name} {key}", value))
    files = [(key, value) for key, value in named if value]
    unreadable = [f"{key}: {value}" for key, value in files if not _readable(Path(value))]
    if unreadable:
        return Check("tls files", "FAIL", "cannot read", tuple(unreadable))
    return Check(
        "tls files", "OK", f"{len(files)} configured, all readable" if files else "none configured"
    )


def _readable(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError:
        return False
    return True
