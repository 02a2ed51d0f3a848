"""What a customer's text reply means for consent: opt-out, help, opt-in, or a person must look.

The reserved words (STOP, STOPALL, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE) revoke consent
whatever the case or punctuation, so "Stop. Thank you", "stop!!" and " STOP " all opt out, as does
other clear wording ("please remove me from your list", "no más", "stpo"). A longer message that
merely contains such a word ("can you stop by the dealership", "STOP this terrible bill, I will
come by Tuesday") is neither ignored nor obeyed blindly: it is flagged NEEDS_REVIEW so a person
decides. OPT_IN (START, YES, UNSTOP) only means something for a number that is opted out; for any
other number treat it as an ordinary reply.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import DomainError


class ReplyError(DomainError):
    """A reply body that is not text."""


class ReplyKind(StrEnum):
    OPT_OUT = "opt_out"  # revoke consent on every channel; send the one confirmation text
    HELP = "help"  # answer with the help text (who we are, how to opt out)
    OPT_IN = "opt_in"  # START/YES/UNSTOP: consent given back, for an opted-out number
    NEEDS_REVIEW = "needs_review"  # may be an opt-out: a person must read it before anything else
    ORDINARY = "ordinary"  # a conversation message for the agent


@dataclass(frozen=True, slots=True)
class ReplyClass:
    kind: ReplyKind
    matched: str = ""  # the word or phrase that decided it, normalized ("stop", "no mas")
    reason: str = ""  # why, for the agent's screen

    @property
    def is_opt_out(self) -> bool:
        return self.kind is ReplyKind.OPT_OUT


# Reserved words (CTIA / carrier practice and the FCC's revocation rule), normalized.
OPT_OUT_WORDS = frozenset(
    {"stop", "stopall", "stop all", "quit", "end", "revoke", "optout", "opt out", "cancel",
     "unsubscribe", "unsub", "alto", "parar", "cancelar", "baja", "no mas"}
)  # fmt: skip
HELP_WORDS = frozenset({"help", "info", "ayuda"})
OPT_IN_WORDS = frozenset({"start", "yes", "unstop"})

# Words that may surround a keyword without making it part of a sentence about something else.
_FILLER = frozenset(
    {"please", "pls", "plz", "plse", "thanks", "thank", "you", "thx", "ty", "now", "me", "asap",
     "already", "ok", "okay", "sir", "maam", "again", "texting", "texts", "messages", "messaging",
     "por", "favor", "gracias", "all", "the", "just", "right", "away", "thankyou", "k"}
)  # fmt: skip

# Words whose presence anywhere flags a longer message for review. END is left out: "the end of
# the month" is everyday wording, and END is honoured whenever it stands alone.
_REVIEW_WORDS = frozenset(
    {"stop", "stopall", "quit", "revoke", "optout", "cancel", "unsubscribe", "unsub"}
)

# Common misspellings are matched by edit distance (adjacent swaps count 1), except real words
# that happen to sit that close and mean something else.
_FUZZY_TARGETS: dict[str, int] = {
    "stop": 1,
    "stopall": 1,
    "unsubscribe": 2,
    "cancel": 1,
    "revoke": 1,
}
_NOT_TYPOS = frozenset(
    {"top", "sop", "step", "shop", "slop", "stow", "atop", "stomp", "strop", "swop", "stoa",
     "stay", "soap", "snop", "spot", "post", "tops", "pots", "opts", "sup", "stoep", "seop",
     "cancer", "camel", "evoke", "stab", "stem", "stun", "stub", "star", "scop", "stir",
     "shops", "tsp"}
)  # fmt: skip

# A message no longer than this that ends with STOP (or UNSUBSCRIBE...) is an opt-out:
# "no thanks stop", "not interested unsubscribe".
_SHORT_MESSAGE_TOKENS = 4
_ENDING_WORDS = frozenset({"stop", "stopall", "unsubscribe", "unsub", "optout", "revoke"})
# Words nobody uses except to opt out: they count anywhere in a message (unless negated).
_STRONG_WORDS = frozenset({"stopall", "stop all", "unsubscribe", "unsub", "optout", "opt out"})
_NEGATIONS = frozenset({"dont", "never", "not", "didnt", "wont", "cant", "doesnt"})
_INTENT = ("want to", "wanna", "need to", "have to", "wish to", "going to", "gonna")

_OPT_OUT_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        (
            "stop contacting",
            r"\b(?:stop|quit|cease|end)\s+(?:texting|txting|texing|texting|messaging|msging"
            r"|contacting|calling|sending|emailing|bothering|harassing|spamming)\b",
        ),
        (
            "stop messages",
            r"\b(?:stop|quit|end)\s+(?:all\s+|the\s+|these\s+|your\s+|ur\s+)?(?:texts|txts"
            r"|messages|msgs|calls|emails|spam)\b",
        ),
        ("stop it", r"^(?:please\s+)?(?:stop|quit)\s+it\b"),
        ("no more messages", r"\bno\s+more\s+(?:texts|txts|messages|msgs|calls|emails|contact)\b"),
        (
            "do not contact me",
            r"\b(?:do\s+not|dont|never)\s+(?:text|txt|message|msg|contact|call|email)"
            r"\s+(?:me|this\s+number|my\s+number)\b",
        ),
        (
            "remove me",
            r"\b(?:remove|delete|erase)\s+(?:me|my\s+(?:phone\s+|cell\s+)?number|this\s+number)\b",
        ),
        (
            "take me off",
            r"\btake\s+(?:me|my\s+(?:phone\s+|cell\s+)?number|this\s+number)\s+off\b",
        ),
        ("opt me out", r"\bopt\s+me\s+out\b"),
        ("unsubscribe me", r"\bunsubscribe\s+me\b"),
        ("leave me alone", r"\bleave\s+me\s+alone\b"),
        ("lose my number", r"\blose\s+my\s+number\b"),
        ("no mas", r"\bno\s+mas\b"),
        (
            "no me escriban",
            r"\bno\s+me\s+(?:escriba|escriban|escribas|envie|envien|envies|mande|manden|mandes"
            r"|llame|llamen|llames|contacte|contacten|moleste|molesten)\b",
        ),
        (
            "dejen de escribir",
            r"\bdej(?:a|e|en)\s+de\s+(?:escribir|enviar|mandar|llamar|molestar)(?:me|nos)?\b",
        ),
        ("darme de baja", r"\bdar(?:me)?\s+de\s+baja\b"),
        (
            "borrenme de la lista",
            r"\b(?:borr|elimin|quit|saqu|sac)[a-z]*\s+de\s+(?:la|su|tu|sus)\s+lista",
        ),
    )
)
_REVIEW_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("wrong number", re.compile(r"\bwrong\s+(?:number|person|phone)\b")),
)

_SENTENCE_BREAK = re.compile(r"[.!?;,:\n\r]+")
_APOSTROPHES = str.maketrans("", "", "'’‘`´")
_EMOJI_STOP = {"\U0001f6d1": " stop ", "\u26d4": " stop "}  # stop sign, no entry


def normalize_reply(text: str) -> str:
    """Lower case, accents and punctuation gone, single spaces: "¡No MÁS!" -> "no mas"."""
    for emoji, word in _EMOJI_STOP.items():
        text = text.replace(emoji, word)
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = plain.casefold().translate(_APOSTROPHES)
    return " ".join(re.sub(r"[^0-9a-z]+", " ", plain).split())


def _distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def _squeeze(word: str) -> str:
    """Runs of one letter collapsed: "stooopp" -> "stop"."""
    return re.sub(r"(.)\1+", r"\1", word)


def _keyword_of(token: str) -> str | None:
    """The opt-out keyword `token` spells, exactly or as a common misspelling."""
    if token in OPT_OUT_WORDS:
        return token
    if token in _NOT_TYPOS or len(token) < 3:
        return None
    squeezed = _squeeze(token)
    for target, limit in _FUZZY_TARGETS.items():
        if squeezed == _squeeze(target):
            return target
        if abs(len(token) - len(target)) <= limit and _distance(token, target) <= limit:
            return target
    return None


def _negated(before: str) -> bool:
    """Whether the words just before a match negate it: "dont stop", "do not want to opt out"."""
    text = " " + before.strip()
    for intent in _INTENT:
        if text.endswith(" " + intent):
            text = text[: -len(intent) - 1]
            break
    words = text.split()
    return bool(words) and words[-1] in _NEGATIONS


def _join_pairs(tokens: list[str]) -> list[str]:
    """Tokens with "opt out", "stop all" and "no mas" joined into one."""
    joined: list[str] = []
    i = 0
    while i < len(tokens):
        pair = " ".join(tokens[i : i + 2])
        if pair in ("opt out", "stop all", "no mas"):
            joined.append(pair)
            i += 2
            continue
        joined.append(tokens[i])
        i += 1
    return joined


def _core(tokens: list[str]) -> list[str]:
    """The sentence without filler words, two-word keywords joined."""
    return [t for t in _join_pairs(tokens) if t not in _FILLER]


def classify_reply(body: str) -> ReplyClass:
    """Classify one inbound text. Never raises on any string."""
    if not isinstance(body, str):
        raise ReplyError(f"a reply body must be text, got {type(body).__name__}")
    whole = normalize_reply(body)
    if not whole:
        return ReplyClass(ReplyKind.ORDINARY, "", "no words in the message")
    sentences = [normalize_reply(part) for part in _SENTENCE_BREAK.split(body)]
    tokens = whole.split()

    # 1. A sentence that is nothing but an opt-out word (plus please/thanks): "Stop. Thank you".
    for sentence in filter(None, sentences):
        core = set(_core(sentence.split()))
        if len(core) == 1 and (keyword := _keyword_of(next(iter(core)))) is not None:
            word = next(iter(core))
            how = "reserved opt-out word" if word == keyword else f"misspelling of {keyword!r}:"
            return ReplyClass(ReplyKind.OPT_OUT, keyword, f"{how} {word!r}")

    # 2. Clear opt-out wording anywhere, unless negated ("don't stop texting me").
    for name, pattern in _OPT_OUT_PHRASES:
        for match in pattern.finditer(whole):
            if _negated(whole[: match.start()]):
                why = f"negated opt-out wording ({name})"
                return ReplyClass(ReplyKind.NEEDS_REVIEW, match.group(0), why)
            return ReplyClass(ReplyKind.OPT_OUT, match.group(0), f"opt-out wording ({name})")
    pairs = _join_pairs(tokens)
    for index, token in enumerate(pairs):
        keyword = token if token in _STRONG_WORDS else _keyword_of(token)
        if keyword in _STRONG_WORDS:
            before = " ".join(pairs[:index])
            if _negated(before):
                why = f"negated opt-out word {token!r}"
                return ReplyClass(ReplyKind.NEEDS_REVIEW, keyword, why)
            return ReplyClass(ReplyKind.OPT_OUT, keyword, f"opt-out word {token!r}")

    # 3. A short message ending in STOP: "no thanks stop".
    if len(tokens) <= _SHORT_MESSAGE_TOKENS:
        keyword = _keyword_of(tokens[-1])
        if keyword in _ENDING_WORDS:
            before = " ".join(tokens[:-1])
            if _negated(before):
                return ReplyClass(ReplyKind.NEEDS_REVIEW, keyword, f"negated {keyword!r}")
            return ReplyClass(ReplyKind.OPT_OUT, keyword, "short message ending in an opt-out word")

    # 4. HELP and START only when they are the whole message.
    core = set(_core(tokens))
    if len(core) == 1 and core <= HELP_WORDS:
        return ReplyClass(ReplyKind.HELP, next(iter(core)), "help keyword")
    if len(core) == 1 and core <= OPT_IN_WORDS:
        return ReplyClass(ReplyKind.OPT_IN, next(iter(core)), "opt-in keyword")

    # 5. An opt-out word inside a longer message: a person decides.
    for name, pattern in _REVIEW_PHRASES:
        found = pattern.search(whole)
        if found:
            return ReplyClass(ReplyKind.NEEDS_REVIEW, found.group(0), f"mentions {name!r}")
    for token in tokens:
        keyword = _keyword_of(token)
        if keyword is not None and keyword in _REVIEW_WORDS:
            why = f"contains {token!r} inside a longer message: may be an opt-out"
            return ReplyClass(ReplyKind.NEEDS_REVIEW, keyword, why)
    return ReplyClass(ReplyKind.ORDINARY, "", "no opt-out, help or opt-in wording")
