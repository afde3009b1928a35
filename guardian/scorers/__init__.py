"""Guardian scorers: one interface (`base.Scorer`), found by name (`registry.get`)."""

from guardian.scorers.base import AgentContext, History, Label, Score, Scorer, ScoreReason, Subject, SubjectKind

__all__ = ["AgentContext", "History", "Label", "Score", "ScoreReason", "Scorer", "Subject", "SubjectKind"]
