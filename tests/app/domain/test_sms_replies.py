import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.sms_replies import (
    ReplyClass,
    ReplyError,
    ReplyKind,
    classify_reply,
    normalize_reply,
)

OPT_OUT, HELP, OPT_IN = ReplyKind.OPT_OUT, ReplyKind.HELP, ReplyKind.OPT_IN
REVIEW, ORDINARY = ReplyKind.NEEDS_REVIEW, ReplyKind.ORDINARY


@pytest.mark.parametrize(
    ("body", "matched"),
    [
        ("STOP", "stop"),
        ("stop", "stop"),
        (" STOP ", "stop"),
        ("stop!!", "stop"),
        ("Stop.", "stop"),
        ("STOPALL", "stopall"),
        ("Stop all", "stop all"),
        ("QUIT", "quit"),
        ("End", "end"),
        ("revoke", "revoke"),
        ("OPT OUT", "opt out"),
        ("Opt-out", "opt out"),
        ("optout", "optout"),
        ("Cancel", "cancel"),
        ("UNSUBSCRIBE", "unsubscribe"),
        ("ＳＴＯＰ", "stop"),  # full-width letters from some keyboards
        ("🛑", "stop"),
        ("STOP STOP STOP", "stop"),
    ],
)
def test_reserved_words_opt_out_whatever_the_case_or_punctuation(body: str, matched: str) -> None:
    result = classify_reply(body)
    assert result.kind is OPT_OUT
    assert result.matched == matched
    assert result.is_opt_out


@pytest.mark.parametrize(
    "body",
    [
        # Known failure elsewhere: "Stop. Thank you" was not recognized.
        "Stop. Thank you",
        "Stop, thanks!",
        "please stop",
        "STOP please!!!",
        "Not interested, stop",
        "No thanks stop",
        "stop texting me",
        "Please stop texting me.",
        "I'm not interested, stop texting me",
        "stop sending me messages",
        "no more texts please",
        "please remove me from your list",
        "Remove my number",
        "Take me off your list",
        "don't text me",
        "Do not contact me again",
        "dont call me anymore",
        "Unsubscribe me",
        "Unsubscribe from these texts",
        "how do I opt out?",
        "leave me alone",
        "Quit it",
        "no más",
        "¡No mas mensajes!",
        "No me escriban más",
        "dejen de escribirme",
        "quiero darme de baja",
        "Bórrenme de su lista",
    ],
)
def test_clear_opt_out_wording(body: str) -> None:
    assert classify_reply(body).kind is OPT_OUT, classify_reply(body)


@pytest.mark.parametrize(
    ("body", "matched"),
    [
        ("stpo", "stop"),
        ("Sotp", "stop"),
        ("stoop", "stop"),
        ("Stooopppp", "stop"),
        ("stp", "stop"),
        ("unsubscibe", "unsubscribe"),
        ("Unsuscribe", "unsubscribe"),
        ("unsubcribe", "unsubscribe"),
        ("cancle", "cancel"),
        ("stopal", "stopall"),
    ],
)
def test_common_misspellings_opt_out(body: str, matched: str) -> None:
    result = classify_reply(body)
    assert result.kind is OPT_OUT
    assert result.matched == matched
    assert "misspelling" in result.reason


@pytest.mark.parametrize(
    ("body", "matched"),
    [
        # Known failure elsewhere: "STOP this terrible bill" treated as an opt-out.
        ("STOP this terrible bill, I will come by Tuesday", "stop"),
        ("can you stop by the dealership", "stop"),
        ("I'll stop by at the end of the week", "stop"),
        ("Cancel my appointment for Saturday", "cancel"),
        ("I quit my job so the payment has to be lower", "quit"),
        ("Don't stop", "stop"),
        ("please don't stop texting me", "stop texting"),
        ("I do not want to opt out", "opt out"),
        ("wrong number", "wrong number"),
        ("You have the wrong person", "wrong person"),
    ],
)
def test_longer_messages_that_merely_contain_a_keyword_go_to_a_person(
    body: str, matched: str
) -> None:
    result = classify_reply(body)
    assert result.kind is REVIEW, result
    assert result.matched == matched


@pytest.mark.parametrize(("body", "kind"), [("HELP", HELP), ("info", HELP), ("Help!", HELP),
                                            ("START", OPT_IN), ("yes", OPT_IN), ("UNSTOP", OPT_IN),
                                            ("Yes please", OPT_IN)])  # fmt: skip
def test_help_and_opt_in_keywords(body: str, kind: ReplyKind) -> None:
    assert classify_reply(body).kind is kind


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "👍",
        "ok",
        "Yes, I can come Tuesday at 5",
        "Can you help me find a used truck?",
        "What is the out the door price?",
        "It's the end of the month, any deals?",
        "nonstop deals?",
        "I stopped by yesterday",
        "top trim please",
        "Start the paperwork, I'll be there at 3",
    ],
)
def test_ordinary_conversation(body: str) -> None:
    assert classify_reply(body).kind is ORDINARY, classify_reply(body)


def test_a_stop_reply_is_never_ordinary_chat() -> None:
    # Known failure elsewhere: a STOP reply forwarded to an agent as ordinary chat.
    for body in ("STOP", "Stop.", "stop pls", "STOP!!! 🛑"):
        assert classify_reply(body).kind is not ORDINARY


def test_reason_explains_the_decision() -> None:
    assert classify_reply("Stop. Thank you") == ReplyClass(
        OPT_OUT, "stop", "reserved opt-out word 'stop'"
    )
    assert classify_reply("can you stop by").reason == (
        "contains 'stop' inside a longer message: may be an opt-out"
    )


def test_normalize_reply() -> None:
    assert normalize_reply("¡No MÁS!") == "no mas"
    assert normalize_reply("Don’t   TEXT\nme.") == "dont text me"
    assert normalize_reply("Ｓｔｏｐ🛑") == "stop stop"


def test_non_text_is_refused() -> None:
    with pytest.raises(ReplyError, match="must be text"):
        classify_reply(None)  # type: ignore[arg-type]
    with pytest.raises(ReplyError, match="bytes"):
        classify_reply(b"STOP")  # type: ignore[arg-type]


KEYWORDS = ["STOP", "STOPALL", "QUIT", "END", "REVOKE", "OPT OUT", "CANCEL", "UNSUBSCRIBE"]
PUNCTUATION = st.text(alphabet=" .!?,;:-*~\n\t\"'()", max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KEYWORDS), PUNCTUATION, PUNCTUATION, st.lists(st.booleans(), min_size=11))
def test_property_reserved_word_with_any_case_and_punctuation_opts_out(
    word: str, before: str, after: str, upper: list[bool]
) -> None:
    cased = "".join(ch.upper() if up else ch.lower() for ch, up in zip(word, upper, strict=False))
    result = classify_reply(before + cased + after)
    assert result.kind is OPT_OUT
    assert result.matched == word.lower()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_property_any_text_is_classified_without_crashing(body: str) -> None:
    result = classify_reply(body)
    assert isinstance(result.kind, ReplyKind)
    if result.kind is not ORDINARY:
        assert result.matched


SAFE_WORDS = ["the", "car", "price", "tuesday", "come", "by", "what", "is", "trade", "payment",
              "thanks", "lease", "blue", "i", "will", "can", "you", "my", "truck"]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SAFE_WORDS), min_size=2, max_size=12), st.integers(0, 12))
def test_property_stop_inside_a_long_ordinary_sentence_is_reviewed_not_obeyed(
    words: list[str], position: int
) -> None:
    words = [*words, "dealership", "today"]  # long enough not to read as a bare keyword
    words.insert(min(position, len(words) - 1), "stop")
    assert classify_reply(" ".join(words)).kind is REVIEW
