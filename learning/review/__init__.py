"""The review inbox: a web app where reviewers see what users downvoted or the bot was unsure
of, grouped by near-duplicate text, and label whole groups; their labels are gold examples for
the next retrain (``learning/retrain/reviewed.py``). Served by ``thumbloop review``."""
