from fewlabels.models.ema import EMA  # noqa: F401  (the one EMA class lives in models; this name stays for the loop)
