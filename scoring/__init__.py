"""The model side of steplens: PRM scorers, score runs and the Django-free engine in scoring.prm."""
