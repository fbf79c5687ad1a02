"""Step 4 of the Yoda pipeline: ragas scores for the predictions, per sample and aggregated."""
