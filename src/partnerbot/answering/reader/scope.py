"""What the scope model sees of a question: its embedding, and how well its best candidates match it.

One function builds the row for serving and for `partnerbot tune`, so both see the same numbers.
"""

from __future__ import annotations

import numpy as np

from partnerbot.answering.reader.features import FEATURES

# Question-level scores, after the embedding's dimensions:
# - top_probability / second_probability: the selector's two best candidate probabilities;
# - best_dense / best_lexical / best_rarest: the best candidate's meaning and word match, and the rarest
#   question word any candidate holds (a name the corpus knows);
# - unknown_terms, asks_now, first_person: the share of words the corpus never uses, a question about the
#   present, a question about the asker's own situation.
SCOPE_SCORES = ("top_probability", "second_probability", "best_dense", "best_lexical", "best_rarest",
                "unknown_terms", "asks_now", "first_person")
_COL = {name: FEATURES.index(name) for name in ("dense", "lexical", "rarest_match", "unknown_terms", "asks_now",
                                                "first_person")}


def scope_row(vector: np.ndarray, matrix: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The scope model's input for one question.

    Args:
        vector: the question's (retrieval query's) unit embedding.
        matrix: its candidates' feature matrix (`features.FEATURES` columns); may have no rows.
        probability: the selector's probability for each candidate.
    """
    top = np.sort(probability)[::-1] if len(probability) else np.zeros(0)
    if len(matrix):
        scores = [
            float(top[0]), float(top[1]) if len(top) > 1 else 0.0,
            float(matrix[:, _COL["dense"]].max()), float(matrix[:, _COL["lexical"]].max()),
            float(matrix[:, _COL["rarest_match"]].max()), float(matrix[0, _COL["unknown_terms"]]),
            float(matrix[0, _COL["asks_now"]]), float(matrix[0, _COL["first_person"]]),
        ]
    else:
        scores = [0.0] * len(SCOPE_SCORES)
    return np.concatenate([np.asarray(vector, dtype=np.float64).ravel(), np.asarray(scores, dtype=np.float64)])
