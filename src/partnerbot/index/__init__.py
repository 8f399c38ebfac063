"""The index layer: the vector store (`store`), the embedding model (`embed`), the build lease (`lease`),
what a version records (`meta`), building versions (`build`) and reading one for serving (`read`).

`read` never imports `build`, so a serving replica loads an index without the code that writes one.
"""
