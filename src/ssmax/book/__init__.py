"""The book layer: one module per chapter and the decision procedure every claim uses.

    decide       verdict kinds, the one decision procedure, its statistics (chapter "How we decide")
    runs         stored runs grouped by their unit of replication (the independently trained model)
    html, plots  how verdicts, tables and figures look
    theory (ch. 1), logn (2), sets (3), pretraining (4), length (5), needle (6), attention (7),
    scorecard (8 and the introduction), cost (appendix)

Nothing in the core package imports this one; a notebook imports its chapter module.
"""
