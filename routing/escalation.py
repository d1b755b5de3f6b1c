"""Who must look at a ticket, and why: a pure function of ticket, decision, rules and config."""

from __future__ import annotations

from routing.config import TriageConfig
from routing.cues import Cues
from routing.injection import find_instruction
from routing.models import Decision, Escalation, EscalationReason, RuleMatch, Ticket


def escalate(
    ticket: Ticket,
    decision: Decision,
    rules: RuleMatch,
    config: TriageConfig,
    *,
    unverified: str | None = None,
    priority_by_agent: bool = False,
) -> Escalation:
    """Decide whether a human must look; no model output can remove a keyword's reason.

    `unverified` names the failure that left the decision unchecked (an LLM error, no local model).
    `priority_by_agent`: an agent set the priority, so the words that sound more urgent were
    already read by a person and page no one again.
    """
    thresholds = config.thresholds
    priority = config.priority(decision.priority)
    reasons: list[EscalationReason] = []
    teams = [decision.team]

    if not ticket.text.strip():
        reasons.append(EscalationReason(code="empty_message", detail="the message has no text"))
    if rules.forced_keywords:
        quoted = ", ".join(f"'{word}'" for word in rules.forced_keywords)
        reasons.append(
            EscalationReason(code="forced_keyword", detail=f"keyword {quoted} always needs a human")
        )
    instruction = find_instruction(ticket.text)
    if instruction is not None:
        # Whatever the model made of it, a person reads a message that gives the model orders.
        reasons.append(
            EscalationReason(
                code="instructs_model",
                detail=f"the message tries to instruct the model ('{instruction}')",
            )
        )
    if priority.always_human:
        reasons.append(
            EscalationReason(
                code="critical_priority", detail=f"priority is {priority.name}: always a human"
            )
        )
    elif not priority_by_agent:
        # A missed page on an outage is the worst mistake: when the words of a level that always
        # needs a human are in the ticket (everyone locked out, data corrupted, a leaked key),
        # a person checks, even if the scores settled on a lower level.
        for level, cues in zip(
            config.priorities, Cues(config.priorities).match(ticket.text).found, strict=True
        ):
            if level.always_human and cues and not decision.no_action:
                quoted = ", ".join(f"'{cue}'" for cue in cues[:2])
                reasons.append(
                    EscalationReason(
                        code="impact_cue",
                        detail=f"{quoted} sounds {level.name}, though it was decided"
                        f" {priority.name}",
                    )
                )
                break
    if decision.off_topic:
        reasons.append(EscalationReason(code="off_topic", detail="the message fits no category"))
    if decision.confidence < thresholds.human_confidence:
        reasons.append(
            EscalationReason(
                code="low_confidence",
                # "category": the post's headline also shows unsure priority and sentiment.
                detail=(
                    "category confidence"
                    f" {_below(decision.confidence, thresholds.human_confidence)}"
                    f" is below {thresholds.human_confidence:.2f}"
                ),
            )
        )
    # A priority that pages or asks for a check (critical, high) must be sure of itself: an
    # unsure guess goes to a human, saying so. An unsure low or medium priority pages nobody.
    priority_confidence = decision.confidence_of("priority")
    priority_floor = (
        priority.min_confidence
        if priority.min_confidence is not None
        else thresholds.human_confidence
        if priority.always_human
        else None
    )
    if priority_floor is not None and priority_confidence < priority_floor:
        reasons.append(
            EscalationReason(
                code="high_priority_uncertain",
                detail=(
                    f"priority {priority.name} is unsure: confidence "
                    f"{_below(priority_confidence, priority_floor)} (below {priority_floor:.2f})"
                ),
            )
        )
    if decision.flagged:
        reasons.append(
            EscalationReason(code="model_flagged", detail="the classifier asked for a human")
        )
    runner_up = decision.runner_up()
    top_score = decision.category_scores.get(decision.category)
    if (
        runner_up is not None
        and top_score is not None
        and decision.source != "rules"
        and top_score - runner_up[1] < thresholds.close_margin
    ):
        other_category, _ = runner_up
        other_team = (
            config.team_for(other_category) if other_category in config.category_names else None
        )
        reasons.append(
            EscalationReason(
                code="close_call",
                detail=f"{decision.category} and {other_category} are too close to call",
            )
        )
        if other_team is not None and other_team not in teams:
            teams.append(other_team)
    if unverified is not None:
        reasons.append(
            EscalationReason(code="unverified", detail=f"decision not verified: {unverified}")
        )
    return Escalation(needs_human=bool(reasons), reasons=tuple(reasons), teams=tuple(teams))


def _below(value: float, floor: float) -> str:
    """A confidence shown with as many decimals as it takes to read below its floor (0.497)."""
    for digits in (2, 3, 4):
        shown = f"{value:.{digits}f}"
        if float(shown) < floor:
            return shown
    return f"{value:.4f}"
