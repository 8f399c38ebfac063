"""The corpus layer: Markdown documents parsed and checked (`parse`), split into sentences and chunks
(`chunk`), and the corpus's own vocabulary for normalising questions (`vocabulary`).

It imports only the shared modules (`types`, `errors`, `text`); every other layer may import it.
"""
