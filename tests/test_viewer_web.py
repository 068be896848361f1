"""The viewer's HTTP side without a browser: preparing an OHIF build for /viewer/, the login and
its cookie, what needs a token and what does not, and CORS on DICOMweb for configured origins."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from echo_node.settings import ConfigError, load_settings
from echo_node.web.auth import list_tokens, revoke_token
from echo_node.web.ohif import PrepareError, installed_version, prepare
from echo_node.web.viewer import COOKIE
from tests.conftest import us_file
from tests.test_web_support import WebNode, serve_web

INDEX = (
    '<html><head><link rel="manifest" href="/manifest.json">'
    '<script src="/app-config.js"></script>'
    '<script>window.PUBLIC_URL="/"</script><script defer src="/app.bundle.0123456789abcdef.js">'
    '</script><a href="//cdn.example.org/x">x</a></head></html>'
)
BUNDLE = 'var x=1;__webpack_require__.p = "/";' + "/* padding */" * 200
FILES = {
    "package/package.json": json.dumps({"name": "@ohif/app", "version": "9.8.7"}),
    "package/dist/index.html": INDEX,
    "package/dist/app.bundle.0123456789abcdef.js": BUNDLE,
    "package/dist/app-config.js": "window.config = {demo: true};",
    "package/dist/app.bundle.css": "@font-face{src:url(/a.woff2)}",
    "package/dist/manifest.json": json.dumps({"icons": [{"src": "/assets/icon.png"}]}),
    "package/README.md": "not served",
}


def _tarball(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def viewer_dir(tmp_path: Path) -> Path:
    target = tmp_path / "ohif"
    assert prepare(_tarball(tmp_path / "app.tgz", FILES), target) == "9.8.7"
    return target


@pytest.fixture
def served(tmp_path: Path, viewer_dir: Path) -> Iterator[WebNode]:
    with serve_web(tmp_path / "data", viewer_dir=str(viewer_dir)) as web:
        yield web


def test_prepare_places_the_build_under_viewer(tmp_path: Path, viewer_dir: Path) -> None:
    index = (viewer_dir / "index.html").read_text()
    assert 'window.PUBLIC_URL="/viewer/"' in index
    assert 'src="/viewer/app.bundle.0123456789abcdef.js"' in index
    assert 'href="/viewer/manifest.json"' in index
    assert 'href="//cdn.example.org/x"' in index  # another host's URL is left alone
    bundle = (viewer_dir / "app.bundle.0123456789abcdef.js").read_text()
    assert '__webpack_require__.p = "/viewer/";' in bundle
    assert gzip.decompress((viewer_dir / "app.bundle.0123456789abcdef.js.gz").read_bytes()) == (
        bundle.encode()
    )
    assert "url(/viewer/a.woff2)" in (viewer_dir / "app.bundle.css").read_text()
    assert "/viewer/assets/icon.png" in (viewer_dir / "manifest.json").read_text()
    assert not (viewer_dir / "app-config.js").exists()  # the node writes its own
    assert not (viewer_dir / "README.md").exists()
    assert installed_version(viewer_dir) == "9.8.7"
    assert installed_version(tmp_path) is None

    # A build of another shape fails the set-up and leaves the prepared one in place.
    changed = {**FILES, "package/dist/app.bundle.0123456789abcdef.js": "var p = '/';"}
    with pytest.raises(PrepareError, match="public path"):
        prepare(_tarball(tmp_path / "other.tgz", changed), viewer_dir)
    with pytest.raises(PrepareError, match="not @ohif/app"):
        prepare(
            _tarball(tmp_path / "x.tgz", {**FILES, "package/package.json": '{"name": "x"}'}),
            viewer_dir,
        )
    assert installed_version(viewer_dir) == "9.8.7"


def test_login_cookie_and_what_it_opens(served: WebNode) -> None:
    base = f"http://127.0.0.1:{served.port}"
    page = {"accept": "text/html"}
    # Without a token the page sends the browser to the login, keeping where it was going.
    start = httpx.get(f"{base}/viewer/viewer?StudyInstanceUIDs=1.2.3", headers=page)
    assert start.status_code == 303
    assert start.headers["location"] == (
        "/viewer/login?next=%2Fviewer%2Fviewer%3FStudyInstanceUIDs%3D1.2.3"
    )
    assert httpx.get(f"{base}/viewer/app-config.js").status_code == 401
    assert httpx.get(f"{base}/viewer/").status_code == 401  # not a browser: no redirect
    # The build's own files are public (browsers fetch the manifest without cookies).
    bundle = httpx.get(f"{base}/viewer/app.bundle.0123456789abcdef.js")
    assert bundle.status_code == 200 and "/viewer/" in bundle.text
    assert bundle.headers["content-encoding"] == "gzip"
    assert "immutable" in bundle.headers["cache-control"]
    for missing in ("/viewer/nothing.js", "/viewer/.echo-node-ohif", "/viewer/../index.html"):
        assert httpx.get(f"{base}{missing}").status_code in (401, 404), missing
    assert "9.8.7" not in httpx.get(f"{base}/viewer/.echo-node-ohif").text

    form = httpx.get(f"{base}/viewer/login?next=/viewer/viewer")
    assert form.status_code == 200 and 'value="/viewer/viewer"' in form.text
    wrong = httpx.post(f"{base}/viewer/login", data={"token": "nope", "next": "/viewer/"})
    assert wrong.status_code == 401 and COOKIE not in wrong.headers.get("set-cookie", "")
    # next= never leads off the viewer.
    for target, landing in (("https://evil.example", "/viewer/"), ("/viewer/x", "/viewer/x")):
        answer = httpx.post(
            f"{base}/viewer/login", data={"token": served.read_token, "next": target}
        )
        assert answer.status_code == 303 and answer.headers["location"] == landing
    cookie = answer.headers["set-cookie"]
    assert f"{COOKIE}={served.read_token}" in cookie
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain HTTP here; HTTPS adds Secure

    with httpx.Client(base_url=base, cookies={COOKIE: served.read_token}) as browser:
        index = browser.get("/viewer/viewer?StudyInstanceUIDs=1.2.3", headers=page)
        assert index.status_code == 200 and 'window.PUBLIC_URL="/viewer/"' in index.text
        assert index.headers["cache-control"] == "private, no-cache"
        config = browser.get("/viewer/app-config.js")
        assert config.status_code == 200 and 'routerBasename: "/viewer"' in config.text
        assert 'thumbnailRendering: "thumbnail"' in config.text
        # The cookie opens DICOMweb reads, never writes.
        assert browser.get("/dicom-web/studies").status_code == 200
        body = b"--b\r\nContent-Type: application/dicom\r\n\r\n"
        body += us_file("examples_rgb_color.dcm").read_bytes() + b"\r\n--b--\r\n"
        stow = browser.post(
            "/dicom-web/studies",
            content=body,
            headers={"content-type": 'multipart/related; type="application/dicom"; boundary=b'},
        )
        assert stow.status_code == 401
        # Revoking the token ends the session.
        tokens = list_tokens(served.node.sessions)
        (reader,) = [token.id for token in tokens if token.name == "test reader"]
        assert revoke_token(served.node.sessions, reader)
        assert browser.get("/dicom-web/studies").status_code == 401
        assert browser.get("/viewer/viewer", headers=page).status_code == 303

    logout = httpx.get(f"{base}/viewer/logout")
    assert logout.status_code == 303 and f'{COOKIE}=""' in logout.headers["set-cookie"]


def test_viewer_not_installed(tmp_path: Path) -> None:
    with serve_web(tmp_path / "data", viewer_dir=str(tmp_path / "missing")) as web:
        answer = httpx.get(f"http://127.0.0.1:{web.port}/viewer/", headers=web.auth())
        assert answer.status_code == 503 and "make viewer" in answer.json()["message"]
    with serve_web(tmp_path / "data2", viewer_dir="") as web:
        assert httpx.get(f"http://127.0.0.1:{web.port}/viewer/").status_code == 404


def test_cors_for_configured_origins_on_dicomweb_only(tmp_path: Path, viewer_dir: Path) -> None:
    allowed = "https://viewer.example.org"
    preflight = {
        "origin": allowed,
        "access-control-request-method": "GET",
        "access-control-request-headers": "authorization",
    }
    with serve_web(
        tmp_path / "data",
        cors_origins=f"{allowed},http://10.0.0.5:3000",
        viewer_dir=str(viewer_dir),
    ) as web:
        url = f"{web.url}/studies"
        answer = httpx.options(url, headers=preflight)
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == allowed
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in answer.headers
        elsewhere = httpx.options(url, headers={**preflight, "origin": "https://evil.example"})
        assert elsewhere.status_code == 400
        assert "access-control-allow-origin" not in elsewhere.headers
        # The actual read: still needs its token; the 401 carries CORS so the viewer sees it.
        refused = httpx.get(url, headers={"origin": allowed})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == allowed
        read = httpx.get(url, headers={"origin": allowed, **web.auth(web.read_token)})
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] == allowed
        # Not on the node's own pages.
        login = httpx.get(f"http://127.0.0.1:{web.port}/viewer/login", headers={"origin": allowed})
        assert "access-control-allow-origin" not in login.headers
    with serve_web(tmp_path / "data2") as web:  # the default: same origin only
        answer = httpx.options(f"{web.url}/studies", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers


def test_cors_origins_are_checked() -> None:
    for bad in ("*", "https://viewer.example.org/", "viewer.example.org", "ftp://x", "https://a/b"):
        with pytest.raises(ConfigError, match="cors_origins"):
            load_settings(environ={"ECHO_NODE_CORS_ORIGINS": bad})
    settings = load_settings(
        environ={"ECHO_NODE_CORS_ORIGINS": "https://a.example.org, http://10.1.2.3:8080"}
    )
    assert settings.cors_origins == ("https://a.example.org", "http://10.1.2.3:8080")


def test_thumbnail_through_the_cookie(served: WebNode) -> None:
    """What OHIF's study browser does: fetch() a thumbnail with the login's cookie only."""
    dataset = dcmread(us_file("examples_ybr_color.dcm"))
    body = b"--b\r\nContent-Type: application/dicom\r\n\r\n"
    body += us_file("examples_ybr_color.dcm").read_bytes() + b"\r\n--b--\r\n"
    assert (
        httpx.post(
            f"{served.url}/studies",
            content=body,
            headers={
                **served.auth(),
                "content-type": 'multipart/related; type="application/dicom"; boundary=b',
            },
        ).status_code
        == 200
    )
    path = f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}/thumbnail"
    with httpx.Client(cookies={COOKIE: served.read_token}) as browser:
        answer = browser.get(
            f"{served.url}{path}?viewport=256,256", headers={"accept": "image/jpeg"}
        )
    assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"
