"""The routes' typed dependencies (FastAPI's ``Annotated`` style): the node the app serves.

``create_app`` keeps the node on the application's state; a route that needs it declares a
parameter ``node: NodeDep``, so routes live at module level instead of in a closure.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from echo_node.node import Node


def current_node(request: Request) -> Node:
    node = request.app.state.node
    assert isinstance(node, Node), "create_app keeps the node on app.state"
    return node


NodeDep = Annotated[Node, Depends(current_node)]
