"""The retrieval benchmark: a mixed corpus, paraphrased questions and a ranx scorer."""
