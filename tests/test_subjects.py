"""The other-subject check: a question about one person that only another person's memories answer is declined."""

from __future__ import annotations

import pytest

from memlora_engine import MemoryConfig
from memlora_engine.answering import NOT_IN_MEMORY
from memlora_engine.errors import ConfigError
from memlora_engine.subjects import (
    TURN_WORDS,
    answer_source,
    check_question,
    mask_name,
    other_subject_margin,
    source_turn,
    speaker_subjects,
    subject_of,
)
from memlora_engine.testing import ScriptedGenerator

CAROLINE = [
    "Caroline realized self-care is important after the charity race.",
    "Caroline is researching adoption agencies.",
    "Caroline went to an LGBTQ support group on 7 May 2023.",
]
MELANIE = [
    "Melanie painted a lake sunrise last year.",
    "Melanie's kids love the beach.",
    "Melanie plays the clarinet.",
]


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        ("Caroline went to a support group.", "Caroline"),
        ("Mei Ling's cat is called Tofu.", "Mei Ling"),
        ("Caroline's Dog Show entry won.", "Caroline"),
        ("Ji-woo plays the guitar.", "Ji-woo"),
        ("Melanie and Caroline went camping.", "Melanie"),
        ("The team won the final.", None),
        ("After work she paints.", None),
        ("she likes tea", None),
        ("", None),
    ],
)
def test_subject_of(text, subject) -> None:
    assert subject_of(text) == subject


def test_mask_name_masks_names_and_possessives_longest_first() -> None:
    assert mask_name("Mei Ling's cat and Mei's dog", ["Mei", "Mei Ling"]) == "someone cat and someone dog"
    assert mask_name("Caroline met Carol", ["Carol"]) == "Caroline met someone"


def test_a_question_about_the_other_person_has_a_large_margin(minilm) -> None:
    swapped = other_subject_margin("What did Melanie realize after the charity race?", CAROLINE + MELANIE, minilm)
    assert swapped.asked == "Melanie" and swapped.other == CAROLINE[0] and swapped.margin > 0.06
    right = other_subject_margin("What did Caroline realize after the charity race?", CAROLINE + MELANIE, minilm)
    assert right.asked == "Caroline" and right.margin < 0


@pytest.mark.parametrize(
    "question",
    ["What did someone realize after the charity race?",          # names nobody
     "Did Caroline and Melanie go to the charity race?",          # names two people
     "What did Bob realize after the charity race?"],             # names nobody the memories are about
)
def test_no_check_without_exactly_one_known_subject(minilm, question) -> None:
    assert other_subject_margin(question, CAROLINE + MELANIE, minilm).margin is None


def test_check_question_searches_again_with_the_name_masked(minilm) -> None:
    searched: list[str] = []

    def search(text: str) -> list[str]:
        searched.append(text)
        return CAROLINE[:1]

    check = check_question("What did Melanie realize after the charity race?", MELANIE, search, minilm)
    assert searched == ["What did someone realize after the charity race?"]
    assert check.other == CAROLINE[0] and check.margin > 0.06
    searched.clear()
    assert check_question("What is the weather like?", MELANIE, search, minilm).margin is None
    assert searched == []  # no known subject named: no second search


def _memory(tmp_path, minilm, **config):
    from memlora_engine import Memory

    generator = ScriptedGenerator({"generation": lambda request: "self-care is important"})
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, **config), generator=generator, embedder=minilm)
    memory.add_many(CAROLINE + MELANIE, user_id="u")
    return memory


def test_memory_answer_declines_without_a_generation_call(tmp_path, minilm) -> None:
    memory = _memory(tmp_path, minilm)
    declined = memory.answer("What did Melanie realize after the charity race?", user_id="u")
    assert declined.text == NOT_IN_MEMORY and declined.declined == "other_subject" and declined.memories
    assert memory.stats["generation"].calls == 0 and memory.stats["generation"].declined == 1
    answered = memory.answer("What did Caroline realize after the charity race?", user_id="u")
    assert answered.text == "self-care is important" and answered.declined is None
    assert memory.stats["generation"].calls == 1 and memory.stats["generation"].declined == 1


def test_none_turns_the_check_off(tmp_path, minilm) -> None:
    assert MemoryConfig().decline_other_subject == 0.15  # on by default (the other tests use the default)
    memory = _memory(tmp_path, minilm, decline_other_subject=None, decline_other_source=None)
    answer = memory.answer("What did Melanie realize after the charity race?", user_id="u")
    assert answer.text == "self-care is important" and answer.declined is None
    assert memory.stats["generation"].declined == 0
    # with only the check after the call, the same answer is declined: its words are Caroline's
    memory = _memory(tmp_path / "after", minilm, decline_other_subject=None)
    assert memory.answer("What did Melanie realize after the charity race?", user_id="u").declined == "other_source"


def test_the_check_embeds_each_masked_memory_once(tmp_path, minilm) -> None:
    from embedder_helpers import RecordingEmbedder

    from memlora_engine import Memory

    embedder = RecordingEmbedder(minilm)
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path), embedder=embedder,
                    generator=ScriptedGenerator({"generation": lambda request: "self-care is important"}))
    memory.add_many(CAROLINE + MELANIE, user_id="u")
    counts = []
    for forget in (False, False, True):
        if forget:  # a forgotten scope's texts leave the kept vectors too
            memory.delete_all(user_id="u")
            memory.add_many(CAROLINE + MELANIE, user_id="u")
        before = embedder.texts
        assert memory.answer("What did Melanie realize after the charity race?", user_id="u").declined == "other_subject"
        counts.append(embedder.texts - before)
    # the second time only the question and the searches' queries are embedded: the masked memories are kept
    assert counts[1] < counts[0] and counts[1] <= 4
    assert counts[2] == counts[0]


def test_memories_of_another_scope_never_count(tmp_path, minilm) -> None:
    memory = _memory(tmp_path, minilm)
    memory.add_many(["Melanie realized self-care is important after the charity race."], user_id="other")
    assert memory.answer("What did Melanie realize after the charity race?", user_id="u").declined == "other_subject"
    memory.add_many(["Melanie realized self-care is important after the charity race."], user_id="u")
    assert memory.answer("What did Melanie realize after the charity race?", user_id="u").declined is None


@pytest.mark.parametrize("value", [-0.1, 2.5, True, "0.1", float("nan")])
def test_decline_other_subject_is_validated(value) -> None:
    with pytest.raises(ConfigError, match="decline_other_subject"):
        MemoryConfig(decline_other_subject=value)


GRANDMAS = [
    "Melanie's grandma gave her a necklace from Sweden.",
    "Melanie plays the clarinet.",
    "Caroline's grandma is kind and lives nearby.",
    "Caroline and Melanie went to the Sweden exhibition.",
]


@pytest.mark.parametrize(
    ("question", "answer", "asked", "other", "own", "declined"),
    [
        # the answer's words stand only in Melanie's memory: Caroline's question is declined
        ("What did Caroline's grandma give her?", "a necklace", "Caroline", 1.0, 0.0, True),
        ("What did Caroline's grandma give her?", "a necklace from Sweden", "Caroline", 1.0, 0.5, True),
        # the asked person's own memory holds it
        ("What did Melanie's grandma give her?", "a necklace", "Melanie", 0.0, 1.0, False),
        ("How is Caroline's grandma?", "kind", "Caroline", 0.0, 1.0, False),
        # a tie is not someone else's: the relation naming both holds "Sweden" as much
        ("What country is Caroline's grandma from?", "Sweden", "Caroline", 1.0, 1.0, False),
        # half the words is the threshold
        ("What did Caroline's grandma give her?", "a necklace of pearls", "Caroline", 0.5, 0.0, True),
        ("What did Caroline's grandma give her?", "a necklace of pearls and gold", "Caroline", 1 / 3, 0.0, False),
        # nothing to look up: a bare verdict, only names, or no single asked person
        ("Did Caroline's grandma give her anything?", "No", "Caroline", None, 0.0, False),
        ("Who gave Caroline a necklace?", "Melanie's grandma", "Caroline", 1.0, 1.0, False),
        ("What did the grandma give?", "a necklace", None, None, 0.0, False),
        ("What did Caroline and Melanie see?", "a necklace", None, None, 0.0, False),
    ],
)
def test_answer_source(question, answer, asked, other, own, declined) -> None:
    source = answer_source(question, answer, GRANDMAS)
    assert source.asked == asked
    assert source.other == (pytest.approx(other) if other is not None else None)
    assert source.own == pytest.approx(own)
    assert source.declines(0.5) is declined


def _grandma_memory(tmp_path, minilm, answer, **config):
    from memlora_engine import Memory

    generator = ScriptedGenerator({"generation": lambda request: answer})
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, **config), generator=generator, embedder=minilm)
    memory.add_many(GRANDMAS, user_id="u")
    return memory


def test_memory_answer_declines_an_answer_from_another_persons_memory(tmp_path, minilm) -> None:
    memory = _grandma_memory(tmp_path, minilm, "a necklace", decline_other_subject=None)
    declined = memory.answer("What did Caroline's grandma give her?", user_id="u")
    assert declined.text == NOT_IN_MEMORY and declined.declined == "other_source"
    assert declined.reason == "'a necklace' comes from another person's memory: " + GRANDMAS[0]
    assert declined.memories and declined.operation == "generation"
    # the model was called once: the check reads its answer
    assert memory.stats["generation"].calls == 1 and memory.stats["generation"].declined == 1
    answered = memory.answer("What did Melanie's grandma give her?", user_id="u")
    assert answered.text == "a necklace" and answered.declined is None and answered.reason is None
    assert memory.stats["generation"].declined == 1


def test_none_turns_the_answer_source_check_off(tmp_path, minilm) -> None:
    assert MemoryConfig().decline_other_source == 0.5  # on by default
    memory = _grandma_memory(tmp_path, minilm, "a necklace", decline_other_subject=None, decline_other_source=None)
    answer = memory.answer("What did Caroline's grandma give her?", user_id="u")
    assert answer.text == "a necklace" and answer.declined is None


def test_a_date_answer_from_another_persons_memory_is_declined(tmp_path, minilm) -> None:
    from memlora_engine import Memory

    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path, decline_other_subject=None),
                    generator=ScriptedGenerator({}), embedder=minilm)
    memory.add_many(["Melanie passed the adoption interview on 20 October 2023.", "Caroline likes tea."],
                    user_id="u")
    answer = memory.answer("When did Caroline pass the adoption interview?", user_id="u")
    assert answer.operation == "date" and answer.declined == "other_source" and answer.text == NOT_IN_MEMORY
    assert "20 October 2023" in answer.reason
    assert memory.answer("When did Melanie pass the adoption interview?", user_id="u").text == "20 October 2023"


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "0.5", float("nan")])
def test_decline_other_source_is_validated(value) -> None:
    with pytest.raises(ConfigError, match="decline_other_source"):
        MemoryConfig(decline_other_source=value)


WINDOW = ("Caroline: That painting is gorgeous! Did you do it?\n"
          "Melanie: Thanks, Caroline! Painting's a fun way to express my feelings and get creative.")


def test_a_fact_gets_the_name_of_the_speaker_it_restates(minilm) -> None:
    facts = ["Caroline finds painting a fun way to express her feelings.",   # Melanie said it
             "Melanie thinks painting is a creative outlet.",               # right already
             "Bob paints too."]                                             # no speaker named first
    fixed, renamed = speaker_subjects(facts, WINDOW, minilm)
    assert fixed == ["Melanie finds painting a fun way to express her feelings.", facts[1], facts[2]]
    assert renamed == 1


@pytest.mark.parametrize(
    ("window", "fact", "expected"),
    [
        # "my daughter" is Dana's: the reply restates it closer, but it says "your daughter"
        ("Dana: We had a scary weekend, my daughter fell off her bike on the trail. She is fine now.\n"
         "Omar: Oh no, sorry about the fall! Glad your daughter is fine after falling off the bike.",
         "Omar's daughter fell off her bike on the trail.", "Dana's daughter fell off her bike on the trail."),
        # a reply in the second person repeats the news more closely than the news itself
        ("Dana: I finally ran the city marathon last Sunday, it took me four hours.\n"
         "Omar: Wow, you ran the whole city marathon in four hours? You must be so proud of yourself!",
         "Omar ran the city marathon in four hours.", "Dana ran the city marathon in four hours."),
        # a speaker's own news in a second-person turn stays theirs when the other's turn is unrelated
        ("Dana: How was your week? Anything new?\nOmar: You should see my new guitar, you would love it!",
         "Omar bought a new guitar.", "Omar bought a new guitar."),
        # a relation names both speakers: masked, it reads the same from either side, so it stays
        ("Omar: Thanks, Dana! Your support means a lot, I'll keep going after my dreams.\n"
         "Dana: Go for it, Omar! I'm always here for you.",
         "Dana is supportive of Omar's dreams.", "Dana is supportive of Omar's dreams."),
    ],
    ids=["possessive", "reply", "own_news_in_a_reply", "relation"],
)
def test_the_speaker_whose_news_it_is_names_the_fact(minilm, window, fact, expected) -> None:
    assert speaker_subjects([fact], window, minilm) == ([expected], int(expected != fact))


@pytest.mark.parametrize(
    "conversation",
    ["user: Thanks! Painting's a fun way to express my feelings.\nassistant: Lovely.",   # roles, no names
     "Melanie: Painting's a fun way to express my feelings."],                           # one named speaker
)
def test_no_rename_without_two_named_speakers(minilm, conversation) -> None:
    facts = ["Caroline finds painting a fun way to express her feelings."]
    assert speaker_subjects(facts, conversation, minilm) == (facts, 0)


def test_memory_add_stores_the_restating_speakers_name_and_counts_it(tmp_path, minilm) -> None:
    from memlora_engine import Memory

    # the two-speaker window's output, then nothing from Melanie's turn read alone (MemoryConfig.speaker_windows)
    generator = ScriptedGenerator({"extraction": ['{"facts": ["Caroline finds painting a fun way to express her '
                                                  'feelings."]}', '{"facts": []}']})
    messages = [{"role": "user", "name": "Caroline", "content": "That painting is gorgeous! Did you do it?"},
                {"role": "assistant", "name": "Melanie",
                 "content": "Thanks, Caroline! Painting's a fun way to express my feelings and get creative."}]
    memory = Memory(MemoryConfig(store="memory", data_dir=tmp_path), generator=generator, embedder=minilm)
    memory.add(messages, user_id="u")
    assert [m.text for m in memory.get_all(user_id="u")] == ["Melanie finds painting a fun way to express her feelings."]
    assert memory.stats["extraction"].renamed_subjects == 1
    generator = ScriptedGenerator({"extraction": ['{"facts": ["Caroline finds painting a fun way to express her '
                                                  'feelings."]}', '{"facts": []}']})
    off = Memory(MemoryConfig(store="memory", data_dir=tmp_path / "off", speaker_subjects=False),
                 generator=generator, embedder=minilm)
    off.add(messages, user_id="u")
    assert [m.text for m in off.get_all(user_id="u")] == ["Caroline finds painting a fun way to express her feelings."]


LONG = " ".join(f"w{i}" for i in range(70))


@pytest.mark.parametrize(
    ("text", "source", "turn"),
    [
        # the subject's own turn, not the longer one of the other speaker
        ("Jon is reading a book.", "Gina: What are you reading these days, tell me everything?\nJon: The Lean Startup.",
         "Jon: The Lean Startup."),
        # a continuation line belongs to its turn, on one line
        ("Jon is reading a book.", "Jon: The Lean Startup.\nIt is great.", "Jon: The Lean Startup. It is great."),
        # the subject is no speaker: the longest turn
        ("Oliver hid a bone.", "Melanie: Oliver hid his bone in my slipper!\nCaroline: Ha!",
         "Melanie: Oliver hid his bone in my slipper!"),
        # user and assistant: the person's turn, even when the assistant says more
        ("Alice drinks green tea.", "user: Green tea now.\nassistant: Noted, I will remember that you drink green tea.",
         "user: Green tea now."),
        ("Alice drinks tea.", "assistant: Noted, tea it is.", "assistant: Noted, tea it is."),  # no person: longest
        ("Alice drinks tea.", "Green tea   now.", "Green tea now."),  # no speaker lines: the whole source
        ("Alice drinks tea.", "  \n ", None),
        ("Jon is busy.", f"Jon: {LONG}", "Jon: " + " ".join(LONG.split()[:TURN_WORDS]) + " ..."),  # cut
        ("Jon is busy.", LONG, " ".join(LONG.split()[:TURN_WORDS]) + " ..."),  # a pasted text is cut too
    ],
)
def test_source_turn(text, source, turn) -> None:
    assert source_turn(text, source) == turn
