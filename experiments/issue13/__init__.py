"""Issue 13's study: AdamLossRel's design, evaluation and post-hoc scripts (see README.md; never imported by the library)."""
