"""``moderator dashboard``: the review queue, the overview and the accounts of the people who decide.

One process serves the pages (aiohttp, server-rendered) and keeps a compact sqlite index built by
consuming the topics (flagged verdicts, verdicts and dead letters for counts, reviews). The index holds
ids, offsets, scores and counts, never raw text: texts are read from the input topics on demand.
"""
