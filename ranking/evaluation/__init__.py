"""Offline quality evaluation of the ranker: a simulated world with hidden
preferences (simulation.py), ranking metrics (metrics.py) and the run that
compares the ranked feed with chronological and engagement-only feeds
(runner.py). `manage.py evaluate_ranking` and bench/ranking_quality.py drive it;
docs/ranking.md ("Offline evaluation") describes the model and the figures."""
