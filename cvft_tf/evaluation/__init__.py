"""Evaluation of cross-view retrieval: recall (``recall``) and the paper's figures (``figures``)."""
