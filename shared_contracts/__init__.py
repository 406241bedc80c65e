"""Contracts shared by the write side, the projections and the query side.

This package is the published language between the parts of orderdesk: event payloads
(``events``), their upcasters (``upcasting``), consistency tokens and read-model shapes.
It imports the standard library and msgspec only, never another package of ours.
"""
