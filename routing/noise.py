"""Messages that need no action, and requests for help that say nothing yet.

A message needs no action when it is made only of acknowledgements ("thanks", "ok", "never mind,
fixed it", "all good now", "gracias", "ありがとう"), friendly filler ("for the quick fix
yesterday, everything works great now") and positive emoji. Anything else in it (a question mark,
"but", "still", an error, a request, an angry emoji) makes it a ticket like any other: a filter
that hides a problem is worse than one that lets a thank-you through.

A vague request ("Can you help me?", "hello??", "anyone there?") is made only of greetings and
words asking for help: it needs a human, who can ask what is wrong.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import get_args

from routing.models import NoActionKind
from routing.parts import wordset


def _fold(text: str) -> str:
    """Lower-case, accents removed (é -> e), curly apostrophes straightened."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'").lower())
    return "".join(character for character in decomposed if not unicodedata.combining(character))


assert set(get_args(NoActionKind)) == {  # noqa: S101  # the lists below cover every kind
    "thanks",
    "resolved",
    "acknowledgement",
    "emoji",
    "praise",
}

# Phrases, accent-free and lower-case, by the kind of message they make. Longest match first.
# (Praise has words, not phrases: _praise.)
_RAW_PHRASES: dict[NoActionKind, tuple[str, ...]] = {
    "resolved": (
        # English
        "never mind", "nevermind", "nvm", "sorted it out", "sorted out", "fixed it", "fixed now",
        "it's fixed", "its fixed",
        "it is fixed", "fixed", "solved it", "solved", "resolved", "sorted it", "sorted",
        "figured it out", "found it", "all good", "all set", "all sorted", "works now",
        "working now", "it works", "it worked", "that worked", "works again", "working again",
        "works fine now", "works great", "works perfectly", "everything works", "is working",
        "problem solved", "issue resolved", "no longer needed", "not needed anymore",
        "please ignore", "ignore this", "ignore my message", "ignore my last message",
        "disregard", "please disregard", "false alarm", "my bad", "my mistake",
        "wrong channel", "wrong thread", "posted in the wrong channel", "meant for another channel",
        "you can close this", "you can close the ticket", "feel free to close",
        "found the setting", "found the option", "found the button", "found the answer",
        "found the page", "found it in the docs", "found it in the documentation",
        "found it in the settings", "found it in your docs", "found it in the help center",
        "found it in the faq", "found what i needed", "found what i was looking for",
        "exactly what i needed", "just what i needed", "that did it", "that did the trick",
        "did the trick", "that helped", "that helps",
        # The cause was on the customer's side: nothing for us to do.
        "found the problem", "found the issue", "found the cause", "found the bug",
        "figured out the problem", "figured out the issue", "it was on our side",
        "it was on our end", "was on our side", "was on our end", "our fault", "my fault",
        "user error", "it was us", "it was me", "sorry for the noise", "sorry for the confusion",
        "fix worked", "the fix worked", "that fixed it", "fixed the problem", "fixed the issue",
        # Spanish, French, German, Portuguese, Italian, Dutch
        "ya funciona", "funciona de nuevo", "funciona otra vez", "ya esta", "todo bien",
        "resuelto", "solucionado", "olvidalo",
        "ca marche", "ca fonctionne", "tout fonctionne", "fonctionne a nouveau",
        "marche a nouveau", "c'est bon", "c'est regle", "tout est regle", "resolu",
        "tout va bien",
        "laisse tomber", "alles gut", "hat sich erledigt", "erledigt", "geloest", "gelost",
        "funktioniert wieder", "funktioniert jetzt", "passt", "lauft alles wieder",
        "lauft wieder", "alles lauft wieder", "geht wieder", "klappt wieder", "tudo certo",
        "resolvido",
        "funcionou", "ja funciona", "funciona de novo", "voltou a funcionar", "esquece",
        "risolto", "funziona di nuovo", "funziona", "tutto ok", "tutto a posto",
        "opgelost", "werkt weer", "werkt nu",
        # The same with "everything" or "problem" in it ("klappt alles wieder", "problème réglé").
        "funktioniert alles wieder", "alles funktioniert wieder", "klappt alles wieder",
        "alles klappt wieder", "probleme regle", "probleme resolu", "deu certo",
        # Japanese, Chinese, Russian, Turkish
        "解決しました", "解決", "直りました", "大丈夫です", "解决了", "已解决", "好了", "没事了",
        "無事に解決しました", "問題が解決しました", "问题已经解决了", "问题解决了", "问题已解决",
        "問題解決了", "해결되었습니다", "해결됐습니다", "해결됐어요", "해결했어요",
        "решено", "всё работает", "все работает", "работает", "cozuldu", "halloldu",
    ),
    "thanks": (
        "thank you so much", "thank you very much", "thanks a lot", "thanks so much",
        "thanks a ton", "thanks a bunch", "thanks heaps", "thanks again", "thank you again",
        "many thanks", "thank you", "thankyou", "thanks", "thanx", "thx", "tysm", "ty",
        "much appreciated", "appreciate it", "appreciated", "cheers", "kudos",
        "muchas gracias", "gracias", "merci beaucoup", "merci", "vielen dank", "danke schoen",
        "danke schon", "danke", "obrigado", "obrigada", "valeu", "grazie mille", "grazie",
        "bedankt", "dank je wel", "dankjewel", "dank je", "tack", "takk", "kiitos", "dziekuje",
        "dekuji", "dakujem", "koszonom", "multumesc", "tesekkurler", "tesekkur ederim", "sagol",
        "спасибо", "благодарю", "дякую", "ありがとうございました", "ありがとうございます",
        "ありがとう", "谢谢你们", "谢谢", "多谢", "感谢", "謝謝",
        "감사합니다", "고맙습니다", "شكرا", "תודה", "धन्यवाद", "terima kasih", "cam on",
    ),
    "acknowledgement": (
        "sounds good", "got it", "understood", "noted", "will do",
        # Going to try what support suggested: nothing to do until they say how it went.
        "will try that", "i'll try that", "will try it", "i'll try it", "will try", "i'll try",
        "let me try that", "let me try", "will give it a try", "i'll give it a try",
        "will give that a try", "i'll give that a try", "trying now", "trying it now",
        "ok thanks", "okay",
        "okey", "ok", "k", "kk", "alright", "all right", "right", "sure", "yes", "yep", "yup",
        "fine", "great", "perfect", "awesome", "cool", "nice", "excellent", "wonderful",
        "amazing", "brilliant", "super", "no worries", "no problem", "np",
        "vale", "perfecto", "genial", "de acuerdo", "listo", "d'accord", "parfait", "entendu",
        "alles klar", "klar", "verstanden", "prima", "perfeito", "beleza", "combinado",
        "va bene", "perfetto", "capito", "prima", "了解", "承知しました", "わかりました", "好的",
        "明白", "хорошо", "понятно", "ладно", "tamam", "anladim",
    ),
}  # fmt: skip

# Folded once, longest first, so "thank you so much" goes before "thank you".
_PHRASES = {
    kind: tuple(sorted({_fold(phrase) for phrase in phrases}, key=len, reverse=True))
    for kind, phrases in _RAW_PHRASES.items()
}

# Filler that needs its context: "for the quick fix" is friendly, "fix" alone is an ask. Folded
# as the message is (kana lose their voicing marks, hangul becomes jamo).
_FILLER_PHRASES = tuple(
    sorted(
        # In the order written (dict keys, not a set), so equal lengths sort the same each run.
        dict.fromkeys(_fold(phrase) for phrase in (
            "for the quick fix", "for the fix", "for fixing it", "for fixing this",
            "for fixing that", "for the help", "for your help", "for all your help",
            "for all the help", "for helping", "for helping me", "for helping us",
            "for the quick reply", "for the quick response", "for the quick answer",
            "for the answer", "for your answer", "for the reply", "for the response",
            "for the update", "for the updates", "for looking into it", "for looking into this",
            "for the refund", "for the fast refund", "for the quick refund", "for the credit",
            "for the fast reply", "for the fast response", "for the fast fix", "for the fast help",
            "didn't expect it", "did not expect it", "that quickly", "so quickly", "so fast",
            "for sorting it", "for sorting this out", "for getting back to me",
            "for getting back to us", "for your patience", "for the support", "for your support",
            "so helpful", "very helpful", "really helpful", "super helpful", "great help",
            "you're a star", "youre a star", "you are a star", "you're a legend",
            "great support", "great service", "good job", "great job", "well done", "nice work",
            "great work", "you rock", "you're the best", "youre the best", "have a nice day",
            "have a great day", "have a good day", "have a great weekend",
            "have a good weekend", "have a nice weekend", "enjoy your weekend", "have a good one",
            "on our end", "on our side", "on my end", "on my side", "keep it up",
            "keep up the good work", "keep up the great work",
            "pour votre aide", "pour votre reactivite", "pour ton aide", "pour l'aide",
            "pour la reponse",
            "por su ayuda", "por tu ayuda", "por la ayuda", "por la respuesta",
            "fur die hilfe", "fur ihre hilfe", "fur eure hilfe", "fur die schnelle hilfe",
            "pela ajuda", "pela resposta", "per l'aiuto", "voor de hulp",
            "voor de snelle reactie", "voor de reactie", "voor het antwoord",
            "voor het snelle antwoord", "ご対応", "迅速なご対応", "빠른 답변",
        )),
        key=len,
        reverse=True,
    )
)  # fmt: skip

# Words that may surround an acknowledgement without adding an ask.
_FILLER = wordset(
    """
    a again all also and anyway appreciate as awesome back being best blazing both bye by
    everyone everything everybody fast fine for from good great guys had have
    hey hi hello i i'm im indeed it it's its just kind lot lightning much my now
    oh ok okay once perfectly prompt quick quickly really right so
    sorted super support team that that's thats the then this time to today too totally
    truly very was well were working works yesterday you your yours yall y'all we our
    again team's looks seems everything's tonight morning wow sorry btw confirming already
    support's lads folks man mate dear sir madam colleague colleagues pessoal gente equipe
    equipo leute
    por la el los las tu su todo ahora ya de pour la le les votre ton tout maintenant
    und fur die der das euch ihre jetzt alles pela o a sua agora tudo per il
    la vostra tutto ora voor je jullie alles nu rapide rapida rapido schnelle veloce snelle
    aqui reactif reactifs reactive reactives
    """
)

# Positive or neutral emoji that may make up a message on their own ("👍", ":pray:").
_KIND_EMOJI = frozenset("👍👌🙏✅✔☑🎉🥳🙌👏💯✨😊🙂😀😃😄😁😆☺😍🥰❤💙💚💜🧡💛🤝💪😎🤗🆗🌟⭐🙈😅")
_KIND_EMOJI_CODES = wordset(
    """
    +1 thumbsup thumbs_up ok_hand pray white_check_mark heavy_check_mark ballot_box_with_check
    tada partying_face raised_hands clap 100 sparkles blush slightly_smiling_face smile smiley
    grinning grin laughing relaxed heart_eyes smiling_face_with_3_hearts heart blue_heart
    green_heart purple_heart orange_heart yellow_heart handshake muscle sunglasses hugging_face
    hugs ok
    """
)

# Emoji that say something is wrong or unclear: alone, they are a vague request for help (a person
# asks what is wrong), never noise. Any other emoji alone ("😂", "👀") needs no action.
_UNKIND_EMOJI = frozenset("😡🤬😠😤😞😟😢😭😩😫🙁☹😣😖😰😱😨🤯👎💩🔥🆘⚠❌⛔🚨🐛💔😒🙄🤔❓❗‼⁉🤦😕")
_UNKIND_EMOJI_CODES = wordset(
    """
    rage angry triumph disappointed worried cry sob weary tired_face slightly_frowning_face
    frowning_face persevere confounded cold_sweat scream fearful exploding_head thumbsdown -1
    hankey poop fire sos warning x no_entry rotating_light bug broken_heart unamused
    face_with_rolling_eyes thinking_face question exclamation bangbang interrobang facepalm
    face_palm confused
    """
)

_SLACK_EMOJI = re.compile(r":([a-z0-9_+\-']+):")
# Skin tones, variation selectors and joiners are part of an emoji, not words.
_EMOJI_PARTS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f\u200d]")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Scripts written without spaces: their phrases match anywhere, not on word boundaries.
_NO_SPACES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")

# Greetings and the words of asking for help, which alone say nothing about the problem.
_VAGUE = wordset(
    """
    a an any anybody anyone are be can could do does help helping here hey hi hello hallo
    hola holla i i'm im is issue it me need needed please pls plz problem question quick
    someone somebody support there us we would you yo urgently good morning afternoon
    evening team guys someone's ayuda ayudame necesito alguien aide aidez moi besoin quelqu'un
    bonjour salut hilfe brauche jemand guten tag ajuda preciso alguem ola oi aiuto
    qualcuno ciao hulp nodig iemand hallo tem tiene hay have has got small something
    """
)


# Praise that asks nothing names what it praises ("the new editor is fantastic, our writers love
# it"), and that may be any word: so praise is a praising word with none of the words that ask,
# doubt, contrast, negate or report a problem. A filter that hides a problem is worse than one
# that lets praise through, so the list of what breaks it is long, and sarcasm's markers are in it.
_PRAISE = wordset(
    """
    love loved loving loves adore adored fantastic amazing awesome brilliant excellent superb
    wonderful great impressed impressive delighted thrilled happy pleased perfect stellar
    outstanding incredible terrific lifesaver slick beautiful gorgeous intuitive kudos bravo
    smooth seamless flawless fabulous phenomenal spectacular marvelous marvellous best
    helpful shoutout hero heroes legend legends rock rocks star stars
    genial increible fantastico fantastique genial super toll klasse wunderbar otimo otima
    incrivel ottimo fantastico bellissimo geweldig prachtig
    """
)
_NOT_PRAISE = wordset(
    """
    not no never nothing nobody none nor cannot can't cant won't wont don't dont doesn't doesnt
    didn't didnt isn't isnt aren't arent wasn't wasnt weren't haven't hasn't without
    but though although however except only still yet unfortunately sadly shame pity otherwise
    wish would could should can will please pls plz need needs needed want wants wanted must
    add adding missing lack lacks lacking request suggest suggestion idea hope hoping
    bug bugs error errors broken broke break breaks crash crashes crashed fail fails failed
    failing failure issue issues problem problems slow slower wrong down outage again another
    every always keeps kept stuck lost gone deleted refund charge charged charging invoice
    cancel cancelled canceled bill billed price pricing expensive
    how why when where what which who whether if unless until or
    what's whats where's wheres who's whos how's hows when's why's
    find tell generate create give show list make write book remind play get
    sure right yeah totally clearly obviously lol lmao exactly wow oh urgent urgently asap
    i'd we'd it'd you'd they'd see
    twice third fourth fifth times time sometimes half try retry empty blank
    hate hated hates terrible awful horrible worst worse annoying annoyed frustrating
    disappear disappeared vanish vanished wipe wiped erase erased hack hacked leak leaked
    lock locked corrupt corrupted duplicate duplicated overcharge overcharged
    someone somebody else else's other others another stranger takes took over before used
    anymore off zero wrong blank trash bin itself mess unresponsive freeze froze frozen hang hangs
    delay delayed late logout logged timeout expose exposed visible unable stop stopped
    frustrated disappointed disappointing angry outrageous ridiculous useless bad poor ugly
    confusing confused hard difficult painful nightmare joke unacceptable
    pero aber mais mas ma maar nicht pas nao non niet не нет ни kein keine keinen ne geen degil yok
    """
)
# Praise is short: a long message has room for an ask the lists do not know.
PRAISE_MAX_WORDS = 30


# A wish said with a praising word ("I'd love to see shortcuts"): an ask.
_DESIRE = re.compile(r"\b(?:love|like|adore) (?:to|it if|if|a|an|some|more)\b")
# How praise is announced: not an ask of its own ("just wanted to say ...").
_PRAISE_OPENING = re.compile(
    r"\b(?:(?:i |we )?(?:just )?(?:wanted|want) to (?:say|let you know|tell you)(?: that)?"
    r"|just a (?:quick )?note(?: to say)?)\b"
)


# A rating is praise, not a number of anything ("10/10", "5/5", "100%").
_RATING = re.compile(r"(?<![\w/])(?:10/10|5/5|100 ?%)(?![\w/])")
# A clause that opens as a question asks, with or without its question mark ("is there a dark
# mode", "any plans for offline mode").
_QUESTION_OPENING = re.compile(
    r"^(?:is|are|was|were|do|does|did|has|have|will|would|can|could|should|shall|may|any)"
    r"\s+(?:there|it|this|that|these|those|the|you|we|i|they|your|our|my|a|an|plans?|chance|way"
    r"|news|update|eta|idea|one|anyone|someone)\b"
)
# What a resolution says works again ("the export went through", "that fixed the layout").
_WORKS = re.compile(
    r"\b(?:works?|worked|working|went through|goes through|gone through|came through|fixed"
    r"|solved|sorted|resolved|ran|runs|loads|loaded|synced|arrived|received|is back|are back"
    r"|restored|recovered|shows up|showed up|processed|succeeded|successful(?:ly)?|funciona"
    r"|funcionou|marche|fonctionne|funktioniert|klappt|werkt|funziona)\b"
)
# Sentences and clauses: each must be praise (or a resolution) on its own.
_CLAUSE_BREAK = re.compile(r"[.!;:\n]+(?=\s|$)|[,;()]|\s[-\u2013\u2014]+\s|\.\.\.")
# Words of using, relying on and gaining from what is praised ("we use it daily", "saved me an
# hour today", "so much cleaner"): a clause of them may stand beside the praise.
_USAGE = wordset(
    """
    use uses using used daily weekly rely relies relying depend depends depending on recommend
    recommended recommending team writers staff whole office colleagues customers clients users
    """
)
_BENEFIT = wordset(
    """
    saved saves helped helps walked cleaner faster easier simpler quicker smoother
    clearer nicer better happier happy improved dropped converting
    """
)
# A gain measured ("12k records in five minutes", "+8% this month", "from 14 min to 4 min"): a
# praise's clause, when no word in the message doubts or complains.
_GAIN = re.compile(
    r"(?:\+\s?\d+(?:[.,]\d+)?\s?%|\bin (?:\d+|one|two|three|four|five|ten|a few|under a)"
    r" (?:seconds?|minutes?|mins?|hours?|days?)\b|\bfrom \d+\S* ?(?:\w+ )?to \d+)"
)
# A thank-you for the fix ("thank you for sorting out our SSO config yesterday"), and the
# customer's own cause ("it was our firewall blocking the webhook IPs"): a resolution's clauses.
_THANKS_FOR = re.compile(
    r"^(?:thanks|thank you|many thanks|big thanks|huge thanks)(?: so much| a lot)?(?: to \w+)?"
    r" for (?:sorting|fixing|helping|setting|looking|resolving|solving|getting|walking)\b"
)
_OUR_CAUSE = re.compile(
    r"^(?:(?:nvm|never ?mind|ok|okay|oh|ah|sorry|actually|update|fyi)\W+)?"
    r"(?:it was|that was|the (?:problem|issue|cause|culprit) was|turns out(?: it was)?"
    r"|turned out(?: it was)?|caused by) (?:on )?(?:our|my)\b"
)
# A problem told as solved ("she solved our issue in minutes") names no problem left.
_FIXED_OURS = re.compile(
    r"\b(?:solved|fixed|sorted|resolved|sorted out|cleared up) (?:our|my|the|this|that)"
    r" (?:issue|problem|bug|error)s?\b"
)
# Money that arrived is an outcome, not an ask ("the refund came through already!"): the noun
# would otherwise read as a request for it.
_MONEY = r"\b(?:the|my|our) (?:refund|credit note|credit|payment|transfer|money|reimbursement)"
_MONEY_ARRIVED = re.compile(
    _MONEY + r" (?:has |have |had )?(?:already )?(?:came|come|went|gone) through\b"
    r"|" + _MONEY + r" (?:has |have |had |was |were |is )?(?:already )?"
    r"(?:arrived|landed|processed|been processed)\b"
    r"|\b(?:(?:confirming|just confirming|to confirm),? )?(?:i've |we've |i have |we have )?"
    r"(?:received|got) (?:the|our|my) (?:refund|credit note|credit|corrected invoice|new invoice"
    r"|receipt|reimbursement)\b"
)


def _stems(word: str) -> tuple[str, ...]:
    """The word and what it may be inflected from ("deletes" -> "delete", "crashing" -> "crash")."""
    stems = [word]
    for ending in ("s", "es", "ed", "d", "ing"):
        if word.endswith(ending) and len(word) > len(ending) + 2:
            stems.append(word[: -len(ending)])
    return tuple(stems)


def _doubts(word: str) -> bool:
    """True for a word that asks, doubts, contrasts, negates or reports a problem."""
    if word in _PRAISE:
        return False
    return any(stem in _NOT_PRAISE for stem in _stems(word)) or word.endswith("n't")


def _asks_nothing(folded: str) -> bool:
    """True for a short text with none of the words that ask, doubt, contrast or complain.

    Only for scripts with spaces: the lists are of words, and "解決しない" is one.
    """
    if _NO_SPACES.search(folded):
        return False
    text = _RATING.sub(" ", folded)
    words = _WORD.findall(_PRAISE_OPENING.sub(" ", _DESIRE.sub(" want ", text)))
    if not 0 < len(words) <= PRAISE_MAX_WORDS or any(_doubts(word) for word in words):
        return False
    # Friendly filler goes first: "have a great weekend" opens like "have a ..." but asks nothing.
    text = _without_filler(text)
    return not any(_QUESTION_OPENING.match(clause.strip()) for clause in _CLAUSE_BREAK.split(text))


def _clauses(folded: str) -> list[str]:
    """The message's clauses with words, the praise openings taken out."""
    text = _PRAISE_OPENING.sub(" ", _RATING.sub(" ", folded))
    return [clause for clause in _CLAUSE_BREAK.split(text) if _WORD.search(clause)]


def _filler_only(clause: str, allowed: frozenset[str] = frozenset()) -> bool:
    """True for a clause of thanks, acknowledgements, resolutions and friendly filler only."""
    clause = _without_filler(clause)
    for phrases in _PHRASES.values():
        for phrase in phrases:
            clause, _ = _remove_phrase(clause, phrase)
    return all(word in _FILLER or word in allowed for word in _WORD.findall(clause))


def _every_clause(folded: str, says: re.Pattern[str] | None) -> bool:
    """True when each clause is filler, or says what `says` finds (None: a praising word).

    "The new editor is fantastic. Saving takes 40 seconds": the second sentence praises nothing,
    and a filter that hides a problem is worse than one that lets praise through.
    """
    for clause in _clauses(folded):
        words = _WORD.findall(clause)
        if says is None:
            if any(word in _PRAISE or word in _BENEFIT for word in words) or _GAIN.search(clause):
                continue
            if _WORKS.search(clause) and not any(_doubts(word) for word in words):
                # Beside praise, what works now ("it came through already") is part of it.
                continue
            if _filler_only(clause, _USAGE):
                continue
        elif (
            says.search(clause)
            or _filler_only(clause)
            or _THANKS_FOR.match(clause.strip())
            or _OUR_CAUSE.match(clause.strip())
        ):
            continue
        return False
    return True


def _opens_with_resolution(folded: str) -> bool:
    """True when the message opens with a resolution or a thank-you.

    "All good now, ...", "thanks Priya, that fixed the payslip layout".
    """
    start = folded.lstrip(" ,.!-")
    return any(
        start.startswith(phrase) and not start[len(phrase) : len(phrase) + 1].isalnum()
        for phrase in (*_PHRASES["resolved"], *_PHRASES["thanks"])
    )


def _praise(folded: str) -> bool:
    """True for praise that asks nothing: a praising word, no word that asks or complains."""
    return (
        _asks_nothing(folded)
        and any(word in _PRAISE for word in _WORD.findall(folded))
        and _every_clause(folded, None)
    )


@dataclass(frozen=True)
class Reading:
    """What the noise filter makes of a message."""

    no_action: NoActionKind | None = None
    vague: bool = False


def _is_emoji(character: str) -> bool:
    return unicodedata.category(character) == "So" or "\U0001f000" <= character <= "\U0001faff"


def _without_filler(text: str) -> str:
    """The text with its friendly filler phrases taken out, the longest first."""
    for phrase in _FILLER_PHRASES:
        text, _ = _remove_phrase(text, phrase)
    return text


def _remove_phrase(text: str, phrase: str) -> tuple[str, bool]:
    # Most phrases are not in the text at all: a substring test rules them out without a regex.
    if phrase not in text:
        return text, False
    if _NO_SPACES.search(phrase):
        return text.replace(phrase, " "), True
    removed, count = _phrase_pattern(phrase).subn(" ", text)
    return removed, bool(count)


# Compiled once per phrase: there are more phrases than re's own cache holds, so it thrashed.
@functools.lru_cache(maxsize=2048)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w']){re.escape(phrase)}(?![\w'])")


def _without_emoji(folded: str) -> tuple[str, bool | None]:
    """The text with its emoji removed, and whether it had kind ones (None: an unkind one)."""
    kind = False
    for match in _SLACK_EMOJI.finditer(folded):
        if match.group(1) not in _KIND_EMOJI_CODES:
            return folded, None
        kind = True
    folded = _EMOJI_PARTS.sub("", _SLACK_EMOJI.sub(" ", folded))
    for character in folded:
        if _is_emoji(character):
            # Only an emoji that says something is wrong changes what the words say: a wry
            # or neutral one ("sorry wrong channel 🙃", "ok 👀") is no problem told.
            if character in _UNKIND_EMOJI:
                return folded, None
            kind = kind or character in _KIND_EMOJI
    return "".join(" " if _is_emoji(character) else character for character in folded), kind


# A capitalised name right after a greeting or a thank-you ("Thanks a lot Maria,", "Hi Tom!").
_ADDRESSED = re.compile(
    r"\b((?i:thanks(?: a lot| so much| again)?|thank you(?: so much| again)?|cheers|many thanks"
    r"|hi|hey|hello|dear))[ \t]+[A-Z][a-z]+(?=[\s,.!]|$)"
)


def read_message(text: str) -> Reading:
    """Whether a message needs no action (and which kind), or asks for help without any detail.

    A cheap check of the words; the classifiers still run on every message.
    """
    stripped = _ADDRESSED.sub(r"\1", text.strip())
    vague = _vague(stripped)
    # A question is never noise ("all good now?"), and neither is an empty message.
    if not stripped or "?" in stripped or "\uff1f" in stripped:
        return Reading(vague=vague)
    alone = _emoji_alone(stripped)
    if alone is not None:
        # Nothing but emoji: an upset one asks for a person, any other needs no action.
        return Reading(vague=True) if alone else Reading(no_action="emoji")
    folded, kind_emoji = _without_emoji(_fold(stripped))
    folded = _MONEY_ARRIVED.sub("all good", folded)
    folded = _FIXED_OURS.sub("fixed it", folded)
    if kind_emoji is None:
        # An angry or sad emoji says something is wrong.
        return Reading(vague=vague)
    # Which kinds the message has, read on the whole of it; then filler phrases go first, so an
    # acknowledgement inside one ("great" in "have a great weekend") does not leave "weekend".
    found: list[NoActionKind] = [
        kind
        for kind, phrases in _PHRASES.items()
        if any(_remove_phrase(folded, phrase)[1] for phrase in phrases)
    ]
    folded_whole = folded
    praise, quiet = _praise(folded), _asks_nothing(folded)
    folded = _without_filler(folded)
    for phrases in _PHRASES.values():
        for phrase in phrases:
            folded, _ = _remove_phrase(folded, phrase)
    words = _WORD.findall(folded)
    if any(word not in _FILLER for word in words):
        if vague:
            return Reading(vague=True)
        # "All good now, the export went through": a resolution that opens the message may say
        # what works again ("... then it works on the second try" reports a problem).
        if (
            "resolved" in found
            and quiet
            and _opens_with_resolution(folded_whole)
            and _every_clause(folded_whole, _WORKS)
        ):
            return Reading(no_action="resolved")
        return Reading(no_action="praise") if praise else Reading()
    # "All good now, thanks" is a resolution more than a thank-you.
    for kind in ("resolved", "thanks", "acknowledgement"):
        if kind in found:
            return Reading(no_action=kind)
    if kind_emoji and not words:
        return Reading(no_action="emoji")
    return Reading(vague=vague)


def _emoji_alone(text: str) -> bool | None:
    """For a message of emoji only: True when one of them is upset; None for any other message."""
    codes = _SLACK_EMOJI.findall(text.lower())
    rest = _EMOJI_PARTS.sub("", _SLACK_EMOJI.sub("", text))
    characters = [character for character in rest if not character.isspace()]
    if not (codes or characters) or not all(_is_emoji(character) for character in characters):
        return None
    return any(code in _UNKIND_EMOJI_CODES for code in codes) or any(
        character in _UNKIND_EMOJI for character in characters
    )


def _vague(text: str) -> bool:
    """True for a message of greetings and asks for help only: "Can you help me?", "hello??"."""
    folded, _ = _without_emoji(_fold(text))
    words = _WORD.findall(folded)
    return bool(words) and len(words) <= 12 and all(word in _VAGUE for word in words)
