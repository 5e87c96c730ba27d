"""Theory experiments of the AdaLoss paper: linear regression (Figure 1) and two-layer ReLU networks (Section 4)."""
