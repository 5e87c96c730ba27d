"""Issue 28's study: the KL-adaptive anchor's design, and (later) the new loss-driven optimizer. See README.md."""
