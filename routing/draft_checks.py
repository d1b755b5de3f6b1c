"""Checks an LLM draft must pass before an agent sees it.

A draft is refused when it has a placeholder ("[Your Name]", "[insert date]"), greets or signs
off other than the config says, is too long, promises a refund, a date, a time or an outcome,
gives or asks for a secret, or states a fact the ticket does not give (a number, a date, a link
or an address). The LLM layer asks once more with what was wrong, then the offline draft is
used and the card says why (routing/cascade.py).

Promises are read by meaning, sentence by sentence, not by a list of phrases: a sentence
promises a refund when it names one (in English, German, French, Spanish, Portuguese, Italian or
Dutch) and commits to it (we will, you will receive, it has been approved, wir erstatten, vous
recevrez, reembolsaremos); a time when it gives a future time (tomorrow, within 2 hours, by
Friday, immediately, d'ici demain, innerhalb von 24 Stunden) that the ticket did not; an outcome
when it says something will be, or has been, fixed, resolved, restored or processed, or
guarantees anything. "We cannot promise a refund" and "our billing team will review the charge"
promise nothing. The text is folded first: lower case, accents dropped, curly apostrophes
straightened (a curly "We\u2019ll" reads as "we'll").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from routing.config import TriageConfig

# Two to five sentences and a sign-off fit in well under this.
MAX_DRAFT_CHARS = 1200


@dataclass(frozen=True)
class DraftProblem:
    """One broken rule: `kind` in fixed words (agents may read it), `evidence` the draft's."""

    kind: str
    evidence: str


@dataclass(frozen=True)
class DraftRejected:
    """The LLM's draft broke the rules twice; `reason` says how, in fixed words."""

    reason: str


def _fold(text: str) -> str:
    straight = (text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')).replace(
        "\u201d", '"'
    )
    decomposed = unicodedata.normalize("NFKD", straight.lower())
    return "".join(character for character in decomposed if not unicodedata.combining(character))


def _any(*words: str) -> str:
    return "(?:" + "|".join(words) + ")"


# Placeholders: a bracketed or braced word, an angle-bracketed one that is no link, XXX.
_PLACEHOLDER = re.compile(
    r"\[[^\]\n]*[A-Za-z][^\]\n]{0,60}\]|\{[^}\n]*[A-Za-z][^}\n]{0,60}\}"
    r"|<(?!https?:|mailto:)[^>\n]*[A-Za-z][^>\n]{0,40}>|\bX{3,}\b|\[insert\b"
    r"|\binsert (?:name|date)\b",
    re.IGNORECASE,
)

# Greetings and closings, folded.
_GREETING = re.compile(
    r"^(?:hi|hello|hey|dear|greetings|good (?:morning|afternoon|evening)|hola|buenos dias"
    r"|estimad[oa]|bonjour|bonsoir|salut|cher|chere|madame|monsieur|hallo"
    r"|guten (?:tag|morgen|abend)|liebe[r]?"
    r"|sehr geehrte[r]?|moin|servus|ciao|buongiorno|gentile|ola|oi|prezad[oa]|beste|geachte|hej"
    r"|merhaba|sayin)\b"
)
# The two sign-off problems a draft can be mended of without asking the model again.
MISSING_SIGN_OFF = "does not end with the configured sign-off"
EXTRA_SIGN_OFF = "signs off beyond the configured sign-off"

_CLOSING = re.compile(
    r"^(?:(?:best|kind|warm|warmest|many)\s+)?(?:regards|wishes)\b|^(?:yours\s+)?sincerely\b"
    r"|^best,?$|^cheers,?$|^thanks(?: again)?,$|^thank you,$|^yours(?: truly)?,?$|^respectfully\b"
    r"|^(?:mit )?(?:freundlichen|besten|viele|liebe) gru(?:ss|ß)e?n?\b|^mfg\b|^cordialement\b"
    r"|^(?:bien )?(?:a vous|amicalement)\b|^salutations\b|^(?:un )?saludos?\b|^atentamente\b"
    r"|^atenciosamente\b|^(?:cordiali|distinti) saluti\b|^met vriendelijke groet"
)

# What a refund is called.
_REFUND = re.compile(
    r"\b(?:refund\w*|reimburs\w*|money back|(?:a |the |your |full |partial )credit\b(?! card)"
    r"|credited|compensat\w*|(?:ruck)?erstatt\w*|gutschrift\w*|gutgeschrieben|zuruckgezahlt"
    r"|rembours\w*|un avoir|reembols\w*|devoluc\w*|devolver\w*|rimbors\w*|terugbetal\w*"
    r"|restitui\w*)"
)
# A commitment to give it, or news that it is done.
_REFUND_COMMIT = re.compile(
    r"\b(?:we|i)\s*(?:'ll|will|shall|'re going to|are going to|am going to|'m going to|are gonna"
    r"|can|'ve|have|had|are|'re|am|'m|just)\s+(?:\w+\s+){0,2}"
    r"(?:refund|reimburs|credit|issu|process|send|sent|giv|gave|return|approv|initiat|arrang"
    r"|transfer|put)\w*"
    r"|\byou(?:'ll| will| shall| should| can expect to| are going to)?\s+(?:\w+\s+)?"
    r"(?:get|receive|see|have|be (?:getting|receiving|refunded|reimbursed|credited|compensated))\b"
    r"|\b(?:refund\w*|reimbursement|credit|money|compensation)\s+(?:\w+\s+){0,2}"
    r"(?:will|shall|is going to|should|has|have|had|is|was|are|were)\s+(?:\w+\s+){0,2}"
    r"(?:be\b|been\b|approved|processed|issued|initiated|sent|on (?:its|the) way|arriv\w*"
    r"|reach\w*|appear\w*|show\w*)"
    r"|\b(?:approved|processed|issued|initiated|on its way|on the way)\b"
    r"|\b(?:wir|ich)\s+(?:werden|erstatten|uberweisen|schreiben|zahlen)\b"
    r"|\b(?:sie|du)\s+(?:erhalten|bekommen|erhaltst|bekommst)\b"
    r"|\b(?:wird|werden|wurde|wurden|ist)\s+(?:\w+\s+){0,3}"
    r"(?:erstattet|zuruckerstattet|gutgeschrieben|uberwiesen|genehmigt|veranlasst|angewiesen)"
    r"|\b(?:nous|je)\s+(?:allons|vais|vous\s+rembourserons|rembourserons|remboursons|rembourse)\b"
    r"|\bvous\s+(?:recevrez|allez\s+recevoir|serez\s+rembourse)\w*"
    r"|\b(?:sera|seront|a ete|est|va etre)\s+(?:\w+\s+){0,2}(?:rembourse|credite|effectue|traite"
    r"|approuve|emis|verse)\w*"
    r"|\b(?:vamos a|voy a|te|le|les)\s+(?:\w+\s+)?reembols\w*|\breembolsar(?:emos|e)\b"
    r"|\brecibir(?:a|as|an|emos)\b|\b(?:sera|ha sido|fue|esta)\s+(?:\w+\s+){0,2}"
    r"(?:reembolsad|procesad|aprobad|emitid|realizad)\w*"
    r"|\b(?:vai|vamos|ira|sera)\s+(?:\w+\s+){0,2}(?:reembols|receber|devolv)\w*"
    r"|\b(?:riceverai|ricevera|riceverete|rimborseremo|sara rimborsat)\w*"
    r"|\b(?:wij|we)\s+(?:zullen|gaan)\b"
)
# A time to come, in the languages the product drafts in.
_DAY = _any(
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "montag", "dienstag", "mittwoch", "donnerstag", "freitag", "samstag", "sonntag",
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    "lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo",
)  # fmt: skip
_UNIT = (
    r"(?:minutes?|mins?|hours?|hrs?|days?|business days?|working days?|weeks?|stunden?|tagen?"
    r"|minuten?|wochen?|werktagen?|heures?|jours?|semaines?|horas?|dias?|semanas?|minutos?|ore"
    r"|giorni|uur|dagen)"
)
_TIME = re.compile(
    r"\b(?:tomorrow|tonight|morgen(?! fruh)|ubermorgen|heute abend|demain|ce soir|manana|esta noche"
    r"|amanha|domani|stasera|morgen)\b"
    rf"|\bby\s+(?:tomorrow|tonight|today|noon|midnight|the end|end of|eod|cob|next|this|{_DAY})"
    rf"|\b(?:within|in|under|sous|dans|dentro de|en|em|entro|innerhalb(?: von)?|binnen)\s+"
    rf"(?:the next |les |la |the |un |une |a |an |one |two |three |few |a few |\d+\s*(?:-|to)\s*)?"
    rf"(?:\d+|an?|one|two|three|few|24|48|72)\s*{_UNIT}\b"
    rf"|\b\d+\s*(?:-|to)\s*\d+\s*{_UNIT}\b"
    r"|\b(?:end of (?:the )?(?:day|week|month|business)|next (?:week|month|business day)"
    rf"|next {_DAY}|(?:this|on) {_DAY}|d'ici (?:demain|ce soir|la fin|\d+|{_DAY}))"
    r"|\b(?:immediately|right away|straight away|at once|asap|as soon as possible|in no time"
    r"|momentarily|first thing|sofort|umgehend|unverzuglich|schnellstmoglich|immediatement"
    r"|tout de suite|des que possible|sans delai|inmediatamente|de inmediato|enseguida"
    r"|lo antes posible|imediatamente|subito|immediatamente|onmiddellijk)\b"
    r"|\bbis (?:morgen|heute|ende|spatestens|zum)\b"
    r"|\b(?:at|um|a|alle|a las)\s+\d{1,2}(?::\d{2})?\s*(?:am|pm|uhr|h)\b"
    r"|\b\d{1,2}(?::\d{2})?\s*(?:am|pm)\b"
)
# Times so vague that only an outcome with them makes a promise ("we'll reply soon" is fine).
_SOON = re.compile(
    r"\b(?:today|soon|shortly|heute|bald|in kurze|aujourd'hui|bientot|rapidement|sous peu|hoy"
    r"|pronto|hoje|oggi|presto)\b"
)
# An outcome to come, or one claimed done.
_OUTCOME = re.compile(
    r"\b(?:will|'ll|shall|is going to|are going to|going to|gonna|should)\s+(?:\w+\s+){0,2}"
    r"(?:be\s+)?(?:\w+\s+)?(?:fixed|resolved|restored|sorted|solved|repaired|corrected|reversed"
    r"|refunded|credited|processed|completed|unlocked|reactivated|reinstated|back online"
    r"|back to normal|up and running|working again|back up)\b"
    r"|\b(?:will|'ll|shall|is going to|are going to|going to|gonna|can)\s+(?:\w+\s+){0,2}"
    r"(?:fix|resolve|restore|solve|sort out|repair|correct|reverse|unlock|reactivate)\b"
    r"|\b(?:has|have|had)\s+(?:now\s+|already\s+|just\s+)?been\s+(?:fixed|resolved|restored"
    r"|solved|repaired|corrected|reversed|refunded|credited|processed|unlocked)\b"
    r"|\b(?:i|we)\s+(?:promise|guarantee|assure you)\b|\bguarantee[ds]?\b|\brest assured\b"
    r"|\bwe(?:'ll| will) make sure\b|\b(?:definitely|certainly) (?:be|get|have)\b"
    r"|\b(?:wird|werden)\s+(?:\w+\s+){0,3}(?:behoben|gelost|repariert|wiederhergestellt|bearbeitet"
    r"|erledigt|korrigiert|beheben|losen|reparieren)\b|\b(?:garantier|versprech)\w*"
    r"|\b(?:sera|seront|va etre)\s+(?:\w+\s+){0,2}(?:resolu|corrige|retabli|regle|traite|repare)\w*"
    r"|\b(?:nous|je)\s+(?:allons|vais)\s+(?:\w+\s+){0,2}(?:resoudre|corriger|retablir|regler"
    r"|reparer)\b|\b(?:garanti[rs]?|promet\w*)\b"
    r"|\b(?:sera|quedara|estara)\s+(?:\w+\s+){0,2}(?:resuelto|solucionado|arreglado|corregido"
    r"|procesado|restablecido)\b|\b(?:vamos a|voy a)\s+(?:\w+\s+){0,2}(?:resolver|solucionar"
    r"|arreglar|corregir)\b|\b(?:resolveremos|solucionaremos|arreglaremos|garantiz\w*|prometo"
    r"|prometemos)\b"
)
# Efforts, not promises: "will work to resolve", "we'll do our best to fix".
_EFFORT = re.compile(
    r"\b(?:try|trying|work|working|aim|aiming|do (?:our|my) best|hope|hoping|help|investigat\w*)"
    r"\s+to\s+(?:\w+\s+)?(?:fix|resolve|restore|solve|sort|repair|get)\b"
)
# A commitment denied is none: "we cannot promise a refund", "nous ne pouvons pas garantir".
_DENIED = re.compile(
    r"\b(?:not|n't|cannot|can not|unable to|never|nicht|kein\w*|pas|no)\s+(?:\w+\s+){0,3}"
    r"(?:promise|guarantee|commit|say|confirm|tell|know|versprechen|garantieren|zusagen"
    r"|promettre|garantir|confirmer|prometer|garantizar|confirmar)\w*"
)

# Secrets given, or asked for.
_SECRET = re.compile(
    r"\b(?:password|passwort|kennwort|mot de passe|contrasena|senha|passcode|pin|api key|token"
    r"|secret|credentials?)\s*(?:is|ist|est|es|e|:|=)\s*\S{3,}"
    r"|\b(?:sk|pk|rk)-[A-Za-z0-9_-]{12,}|\bxox[abposr]-[A-Za-z0-9-]{8,}|\bgh[pousr]_[A-Za-z0-9]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:admin|root|master)\s+password\b"
    r"|\b(?:send|share|provide|give|tell|reply with|confirm|enter)\s+(?:us\s+|me\s+)?(?:with\s+)?"
    r"(?:your|the)\s+(?:full\s+|current\s+)?(?:password|pin|cvv|cvc|security code|card number"
    r"|api key|secret|2fa code|one-time code|otp|login details)",
    re.IGNORECASE,
)

# Facts: numbers, dates by name, links and addresses.
_NUMBER = re.compile(r"\d[\d,.:/-]*\d|\d")
_DATE_WORD = re.compile(
    r"\b(?:january|february|april|june|july|august|september|october|november|december"
    r"|januar|februar|marz|juni|juli|oktober|dezember|janvier|fevrier|mars|avril|juin|juillet"
    r"|aout|septembre|octobre|novembre|decembre|enero|febrero|marzo|abril|mayo|junio|julio"
    rf"|agosto|septiembre|octubre|noviembre|diciembre|{_DAY})\b"
)
_LINK = re.compile(r"https?://\S+|www\.\S+|\b[\w.+-]+@[\w-]+\.[\w.-]+\b")

_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+")


def check_draft(
    text: str, *, ticket: str, config: TriageConfig, language: str | None
) -> list[DraftProblem]:
    """Every rule the draft breaks, in the order a reader meets them; empty when it is fit."""
    problems: list[DraftProblem] = []
    folded = _fold(text)
    ticket_folded = _fold(ticket)

    for match in _PLACEHOLDER.finditer(text):
        problems.append(DraftProblem("has a placeholder", match.group()))
        break
    problems.extend(_greeting_and_sign_off(text, config, language))
    if len(text) > MAX_DRAFT_CHARS:
        problems.append(
            DraftProblem(
                f"is too long ({len(text)} characters; at most {MAX_DRAFT_CHARS})",
                "write two to five sentences",
            )
        )
    problems.extend(_promises(folded, ticket_folded))
    secret = _SECRET.search(text)
    if secret is not None:
        problems.append(DraftProblem("gives or asks for a secret", secret.group()))
    problems.extend(_absent_facts(text, folded, ticket, ticket_folded, config))
    return [DraftProblem(problem.kind, problem.evidence[:120]) for problem in problems]


# A run of this many words shared with the model's own instructions, and not in the ticket, is
# those instructions repeated ("repeat everything above this line"), not a reply.
INSTRUCTION_RUN_WORDS = 7


def word_runs(text: str) -> frozenset[tuple[str, ...]]:
    """Every run of INSTRUCTION_RUN_WORDS words in the text, folded."""
    words = re.findall(r"\w+", _fold(text))
    size = INSTRUCTION_RUN_WORDS
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def repeated_instructions(
    text: str, *, instruction_runs: frozenset[tuple[str, ...]], ticket: str
) -> DraftProblem | None:
    """The draft's first run of words taken from the model's instructions, as a problem."""
    shared = (word_runs(text) & instruction_runs) - word_runs(ticket)
    if not shared:
        return None
    return DraftProblem("repeats its instructions", " ".join(min(shared)))


def _greeting_and_sign_off(
    text: str, config: TriageConfig, language: str | None
) -> list[DraftProblem]:
    drafting = config.drafting
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return []
    problems: list[DraftProblem] = []
    signatures = {drafting.signature, *drafting.signatures.values()}
    greeting = drafting.greetings.get(language or "") or (
        "Hi there," if language in (None, "en") else None
    )
    first = lines[0]
    if _GREETING.match(_fold(first)):
        allowed = (
            _fold(first) == _fold(greeting)
            if greeting is not None
            else len(first.split()) <= 3 and first.rstrip().endswith((",", "!", ":"))
        )
        if not allowed:
            problems.append(DraftProblem("greets other than the configured greeting", first))
    if lines[-1] not in signatures:
        after = next((i for i, line in enumerate(lines) if line in signatures), None)
        evidence = " / ".join(lines[after + 1 :]) if after is not None else lines[-1]
        problems.append(DraftProblem(MISSING_SIGN_OFF, evidence[:120]))
    for line in lines[1:-1]:
        if _CLOSING.match(_fold(line)):
            problems.append(DraftProblem(EXTRA_SIGN_OFF, line))
            break
    return problems


def with_sign_off(text: str, config: TriageConfig, language: str | None) -> str | None:
    """The draft ended with the configured sign-off, when that is all it lacks; else None.

    Models often stop without the sign-off, or close with one of their own ("Best regards,"
    and a name). Both are mended here, which spares the customer's ticket a second request.
    A draft that has the sign-off somewhere else is left for the model to fix.
    """
    drafting = config.drafting
    signatures = {drafting.signature, *drafting.signatures.values()}
    lines = text.strip().splitlines()
    if not lines or any(line.strip() in signatures for line in lines):
        return None
    closings = [i for i, line in enumerate(lines) if _CLOSING.match(_fold(line.strip()))]
    # A closing of the model's own in its last three lines, and the name under it, go.
    if closings and closings[-1] >= len(lines) - 3:
        lines = lines[: closings[-1]]
    body = "\n".join(lines).rstrip()
    if not body:
        return None
    signature = drafting.signatures.get(language or "", "") or drafting.signature
    return f"{body}\n\n{signature}"


def _promises(folded: str, ticket_folded: str) -> list[DraftProblem]:
    """Refunds, times and outcomes the draft commits to, one problem of each kind at most."""
    found: dict[str, DraftProblem] = {}
    for sentence in _SENTENCES.split(folded):
        plain = _DENIED.sub(" ", sentence)
        if "refund" not in found and _REFUND.search(plain) and _REFUND_COMMIT.search(plain):
            found["refund"] = DraftProblem("promises a refund", sentence.strip())
        if "time" not in found:
            time = _TIME.search(plain)
            outcome = _OUTCOME.search(plain) and not _EFFORT.search(plain)
            soon = _SOON.search(plain)
            new_time = time is not None and (time.group() not in ticket_folded or outcome)
            if new_time or (soon is not None and outcome):
                found["time"] = DraftProblem("promises a date or a time", sentence.strip())
        if "outcome" not in found and _OUTCOME.search(plain) and not _EFFORT.search(plain):
            found["outcome"] = DraftProblem("promises an outcome", sentence.strip())
    return list(found.values())


def _absent_facts(
    text: str, folded: str, ticket: str, ticket_folded: str, config: TriageConfig
) -> list[DraftProblem]:
    """Numbers, named dates, links and addresses the ticket does not give."""
    problems: list[DraftProblem] = []
    own = _fold(" ".join([config.drafting.signature, *config.drafting.signatures.values()]))
    given = {re.sub(r"\D", "", number) for number in _NUMBER.findall(ticket + " " + own)}
    for match in _NUMBER.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if digits and not any(digits in number for number in given):
            problems.append(DraftProblem("states a number the ticket does not give", match.group()))
            break
    for match in _DATE_WORD.finditer(folded):
        if match.group() not in ticket_folded:
            problems.append(DraftProblem("states a date the ticket does not give", match.group()))
            break
    for match in _LINK.finditer(text):
        if match.group().lower() not in ticket.lower():
            problems.append(
                DraftProblem("gives a link or an address the ticket does not", match.group())
            )
            break
    return problems
