"""The answering layer: retrieval (`retrieve`), the fitted reader (`reader`), the optional writer
(`writer`, `generate`, `verify`) and the `Assistant` that composes them (`assistant`).

It never imports the serving or evaluation layers.
"""
