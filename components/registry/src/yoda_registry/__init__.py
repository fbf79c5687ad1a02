"""Steps 6 and 7 of the Yoda pipeline: the quality gate on the evaluation's scores, and the
registration of the fine-tuned adapter in Vertex AI Model Registry when the gate passes."""
