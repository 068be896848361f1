"""Echo Node: a DICOM-native PACS node for echocardiography."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("echo-node")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
