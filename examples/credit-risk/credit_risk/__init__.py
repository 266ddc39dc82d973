"""Credit-risk example: a synthetic loan-application generator and the feature logic."""
