"""Export: delivering the node's results (SR, overlays) to each configured destination.

``queue`` keeps one state row per output and destination, ``dimse`` and ``dicomweb`` send,
``deliver`` runs one pass over what is due, ``backlog`` counts what is waiting.
"""
