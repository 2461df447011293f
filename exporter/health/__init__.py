"""The five-dimension health model: score, grade and the penalties that explain it."""
