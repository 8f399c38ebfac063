"""partnerbot: a cited question-answering assistant over ICE partnership pages."""

__version__ = "0.1.0"
