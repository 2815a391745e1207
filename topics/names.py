"""Default topic names; every one can be renamed through settings."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicNames:
    comments: str = "comments"
    replies: str = "llm-replies"
    verdicts: str = "verdicts"
    flagged: str = "verdicts.flagged"
    dead_letter: str = "dead-letter"
    reviews: str = "reviews"  # human decisions (the dashboard writes it; topics.reviews)

    def inputs(self) -> tuple[str, str]:
        return (self.comments, self.replies)

    def outputs(self) -> tuple[str, str, str]:
        return (self.verdicts, self.flagged, self.dead_letter)
