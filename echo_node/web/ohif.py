"""The OHIF viewer's files, prepared at set-up to be served under /viewer/.

`make viewer` fetches the npm tarball of ``@ohif/app`` (its prebuilt ``dist/``) and runs
``python -m echo_node.web.ohif TARBALL DIR``. The build assumes it is served at the site's
root: its webpack runtime loads chunks from "/", and its index.html, style sheets and web
manifest link "/…". All are rewritten to /viewer/ here, once, so the node serves the files as
they lie; a build whose shape no longer matches fails the set-up instead of serving a blank
page.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

VIEWER_PATH = "/viewer"
MARKER = ".echo-node-ohif"  # holds the OHIF version; its presence means "prepared"
_DIST = "package/dist/"
_RUNTIME = b'__webpack_require__.p = "/"'
_INDEX_PUBLIC_URL = 'window.PUBLIC_URL="/"'
_INDEX_LINK = re.compile(r'\b(href|src|content)="/(?!/)')
_CSS_URL = re.compile(rb"url\(/(?!/)")
_JSON_PATH = re.compile(rb'"/(?!/)')
# Sent gzip-compressed where the browser accepts it: the main bundle is 17 MB as built.
_COMPRESSED = (".js", ".css", ".wasm", ".json", ".svg", ".html", ".map")


class PrepareError(ValueError):
    """The tarball is not an OHIF build this module knows how to place under /viewer/."""


def prepare(tarball: Path, target: Path) -> str:
    """Unpack the tarball's dist/ into ``target`` (replacing it), rewritten for /viewer/;
    returns the OHIF version."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(tarball) as archive:
        version = _version(archive)
        members = [m for m in archive.getmembers() if m.name.startswith(_DIST)]
        if not members:
            raise PrepareError(f"{tarball} holds no {_DIST}: not the @ohif/app package")
        archive.extractall(staging, members=members, filter="data")
    dist = staging / _DIST
    _rewrite_index(dist / "index.html")
    if not _rewrite_runtime(dist):
        raise PrepareError(f"no bundle sets the webpack public path ({_RUNTIME!r})")
    for sheet in dist.glob("*.css"):  # fonts linked as url(/….woff2)
        sheet.write_bytes(_CSS_URL.sub(f"url({VIEWER_PATH}/".encode(), sheet.read_bytes()))
    manifest = dist / "manifest.json"  # its icons: "src": "/assets/…"
    manifest.write_bytes(_JSON_PATH.sub(f'"{VIEWER_PATH}/'.encode(), manifest.read_bytes()))
    # The node generates its own (the build's points at OHIF's public demo server).
    (dist / "app-config.js").unlink(missing_ok=True)
    for path in list(dist.rglob("*")):
        if path.suffix in _COMPRESSED and path.is_file() and path.stat().st_size > 1024:
            path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), 6))
    (dist / MARKER).write_text(version + "\n", encoding="utf-8")
    previous = target.with_name(target.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    dist.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return version


def installed_version(directory: Path) -> str | None:
    """The OHIF version prepared in ``directory``, or None when it holds no prepared viewer."""
    try:
        return (directory / MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _version(archive: tarfile.TarFile) -> str:
    handle = archive.extractfile("package/package.json")
    if handle is None:
        raise PrepareError("the tarball has no package/package.json")
    package = json.load(handle)
    if package.get("name") != "@ohif/app":
        raise PrepareError(f"the tarball holds {package.get('name')!r}, not @ohif/app")
    return str(package["version"])


def _rewrite_index(index: Path) -> None:
    text = index.read_text(encoding="utf-8")
    if _INDEX_PUBLIC_URL not in text:
        raise PrepareError(f"index.html does not set {_INDEX_PUBLIC_URL!r}")
    text = text.replace(_INDEX_PUBLIC_URL, f'window.PUBLIC_URL="{VIEWER_PATH}/"')
    index.write_text(_INDEX_LINK.sub(rf'\1="{VIEWER_PATH}/', text), encoding="utf-8")


def _rewrite_runtime(dist: Path) -> int:
    """Point every bundle's webpack runtime (the app's and each worker's) at /viewer/."""
    count = 0
    patched = f'__webpack_require__.p = "{VIEWER_PATH}/"'.encode()
    for bundle in dist.glob("*.js"):
        data = bundle.read_bytes()
        if _RUNTIME in data:
            bundle.write_bytes(data.replace(_RUNTIME, patched))
            count += 1
    return count


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m echo_node.web.ohif OHIF_TARBALL TARGET_DIR")
    try:
        version = prepare(Path(sys.argv[1]), Path(sys.argv[2]))
    except (PrepareError, OSError, tarfile.TarError) as exc:
        sys.exit(f"cannot prepare the OHIF viewer: {exc}")
    sys.stdout.write(f"OHIF {version} prepared in {sys.argv[2]} for {VIEWER_PATH}/\n")


if __name__ == "__main__":
    main()
