"""Attribute templates of the synthetic update cases (data only; see :mod:`.synthetic_update`).

Each attribute has small value lists and, per edit type, several wordings. A wording is
``(fact, text)``: the new fact, and the memory text the target writes (``None`` = the
fact itself). Placeholders: ``{n}`` the person, ``{v}`` the stored value, ``{w}`` a
different value of the same attribute, plus per-attribute extras filled by the
generator (``{a_v}``: the value with its article, ``{ving}``: an activity's -ing form,
``{f}``/``{g}``: frequencies, ``{k}``: a pet kind, ...).

The values and wordings keep away from the demo's story (:data:`BANNED_WORDS`):
no city move between those two cities, no pet death followed by a new pet, no diet.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ATTRIBUTES", "BANNED_WORDS", "BASE_DETAILS", "CHANGE_DETAILS", "EXTRA_ATTRIBUTES", "FREQUENCIES",
    "PARAPHRASE_SWAPS", "PET_KINDS",
]

BANNED_WORDS: tuple[str, ...] = (
    "Alice", "Paris", "Lisbon", "Miso", "Pico", "fish", "vegetarian", "nurse", "Portuguese",
)
"""Words of ``memlora demo``'s story: never in synthetic data (observations holding one are skipped)."""

# Word swaps that keep the meaning of a LoCoMo observation (a paraphrased repeat is NONE).
PARAPHRASE_SWAPS: dict[str, str] = {
    "enjoys": "likes", "likes": "enjoys", "loves": "really likes", "recently": "lately",
    "believes": "thinks", "thinks": "believes", "started": "began", "began": "started",
    "wants": "would like", "big": "large", "happy": "glad", "excited": "thrilled",
    "helps": "assists", "important": "significant", "children": "kids", "kids": "children",
    "received": "got", "attended": "went to", "visited": "went to", "finished": "completed",
    "completed": "finished", "plans": "intends", "shared": "told", "mentions": "says",
    "mentioned": "said", "amazing": "wonderful", "wonderful": "amazing", "great": "very good",
    "bought": "purchased", "purchased": "bought", "friends": "pals", "often": "frequently",
}

_CITIES = ["Denver", "Austin", "Toronto", "Osaka", "Madrid", "Chicago", "Seattle", "Boston", "Dublin", "Melbourne",
           "Vienna", "Prague", "Nairobi", "Lima", "Oslo", "Portland", "Atlanta", "Montreal", "Seoul", "Helsinki"]
_JOBS = ["teacher", "software engineer", "accountant", "chef", "electrician", "graphic designer", "pharmacist",
         "mechanic", "architect", "librarian", "firefighter", "journalist", "photographer", "dentist", "carpenter",
         "lawyer", "barista", "data analyst", "social worker", "plumber"]
PET_KINDS = ["dog", "cat", "hamster", "parrot", "rabbit", "turtle", "guinea pig", "lizard"]
_PET_NAMES = ["Rex", "Bella", "Luna", "Coco", "Biscuit", "Ziggy", "Pepper", "Nala", "Oscar", "Daisy", "Mango", "Toby"]
_PARTNERS = ["Tom", "Leo", "Priya", "Hana", "Marco", "Elena", "Omar", "Grace", "Diego", "Mei", "Sofia", "Kofi",
             "Nadia", "Ravi"]
_COLOURS = ["green", "blue", "red", "yellow", "purple", "orange"]
_SEASONS = ["spring", "summer", "autumn", "winter"]
_FOODS = ["pasta", "tacos", "curry", "ramen", "pizza", "dumplings", "lasagna", "paella"]
_GENRES = ["jazz", "rock", "hip hop", "classical music", "country music", "reggae"]
_BOOKS = ["mystery novels", "science fiction", "biographies", "fantasy novels", "poetry"]
# Habits: (3rd person, -ing form); frequencies apart.
_HABITS = [("runs", "running"), ("goes to the gym", "going to the gym"), ("drinks coffee", "drinking coffee"),
           ("plays chess", "playing chess"), ("swims", "swimming"), ("meditates", "meditating"),
           ("bakes bread", "baking bread"), ("cycles to work", "cycling to work"), ("smokes", "smoking"),
           ("keeps a journal", "keeping a journal"), ("plays video games", "playing video games")]
FREQUENCIES = ["every morning", "every evening", "on weekends", "three times a week", "every day", "on Sundays",
          "twice a week", "after work"]
_CARS = ["a Toyota Corolla", "a Honda Civic", "a Ford pickup truck", "a Volkswagen Golf", "an electric Kia",
         "a Subaru Outback", "a Mazda 3", "a vintage Volvo"]
_LANGUAGES = ["Japanese", "Korean", "Spanish", "German", "Italian", "Mandarin", "Arabic", "Greek", "Swahili"]
_INSTRUMENTS = ["piano", "violin", "drums", "cello", "saxophone", "ukulele", "flute", "trumpet"]

ATTRIBUTES: dict[str, dict[str, Any]] = {
    "city": {
        "values": _CITIES,
        "base": ["{n} lives in {v}."],
        "change": [("{n} moved to {w}.", None), ("{n} now lives in {w}.", None),
                   ("{n} relocated from {v} to {w}.", None), ("{n} has just moved to {w} for good.", None),
                   ("{n} left {v} and settled in {w}.", None)],
        "refine": [("{n} lives in a small apartment near the river in {v}.", None),
                   ("{n} lives in {v}, in the old town.", None),
                   ("{n}'s flat in {v} is close to the central station.",
                    "{n} lives in {v}, in a flat close to the central station."),
                   ("{n} has lived in {v} for five years.", None)],
        "end": ["{n} no longer lives in {v}.", "{n} moved out of {v}.", "{n} does not live in {v} anymore."],
        "paraphrase": ["{n} is based in {v}.", "{n}'s home is in {v}.", "{n} resides in {v}.",
                       "{n} lives in the city of {v}."],
    },
    "job": {
        "values": _JOBS,
        "base": ["{n} works as {a_v}."],
        "change": [("{n} now works as {a_w}.", None), ("{n} started a new job as {a_w}.", None),
                   ("{n} changed careers and is now {a_w}.", None),
                   ("{n} left the {v} job and works as {a_w} now.", None)],
        "refine": [("{n} works as {a_v} at a small company downtown.", None),
                   ("{n} has worked as {a_v} for seven years.", None),
                   ("{n} got promoted to senior {v}.", "{n} works as a senior {v}."),
                   ("{n} works part-time as {a_v}.", None)],
        "end": ["{n} quit the job as {a_v}.", "{n} was laid off from the {v} job.",
                "{n} no longer works as {a_v}.", "{n} retired from working as {a_v}."],
        "end_with_state": ["{n} quit working as {a_v} and is now a full-time student.",
                           "{n} retired from being {a_v} and now volunteers at a community garden.",
                           "{n} stopped working as {a_v} to stay home with the kids."],
        "end_and_new": [("{n} quit the job as {a_v}.", "{n} opened a small bakery."),
                        ("{n} resigned from the {v} position.", "{n} started a landscaping business.")],
        "start": ["{n} started working as {a_w}.", "{n} got a job as {a_w}.", "{n} began training as {a_w}."],
        "paraphrase": ["{n} is {a_v} by profession.", "{n}'s job is {v}.", "{n} earns a living as {a_v}.",
                       "{n} is employed as {a_v}."],
    },
    "pet": {
        "values": _PET_NAMES,
        "base": ["{n} has a {k} named {v}."],
        "change": [("{n} renamed the {k} from {v} to {w}.", "{n} has a {k} named {w}.")],
        "refine": [("{n}'s {k} {v} is three years old.", "{n} has a three-year-old {k} named {v}."),
                   ("{n} adopted {v} the {k} from a shelter.", "{n} has a {k} named {v}, adopted from a shelter."),
                   ("{n}'s {k} {v} loves long walks in the park.",
                    "{n} has a {k} named {v} who loves long walks in the park.")],
        "end": ["{n}'s {k} {v} died.", "{n} no longer has the {k} {v}.",
                "{n} gave {v} the {k} away to a neighbour.", "{n}'s {k} {v} passed away last month."],
        "paraphrase": ["{n} owns a {k} called {v}.", "{v} is {n}'s {k}.", "{n} has a pet {k}, {v}."],
        "addition": ["{n} also has a {k} named {w}.", "{n} got a second {k}, {w}."],
        "start": ["{n} adopted a {k} named {w}.", "{n} brought home a {k} called {w}.", "{n} got a new {k}, {w}."],
    },
    "partner": {
        "values": _PARTNERS,
        "base": ["{n} is dating {v}.", "{n}'s partner is {v}."],
        "change": [("{n} is now dating {w}.", None), ("{n}'s new partner is {w}.", None),
                   ("{n} is in a relationship with {w} now.", None)],
        "refine": [("{n} and {v} got engaged.", "{n} is engaged to {v}."),
                   ("{n} has been dating {v} for two years.", None),
                   ("{n} met {v} at a concert.", "{n} is dating {v}; they met at a concert.")],
        "end": ["{n} broke up with {v}.", "{n} and {v} split up.", "{n} is no longer with {v}.",
                "{n} and {v} ended their relationship."],
        "paraphrase": ["{n} is in a relationship with {v}.", "{v} is {n}'s partner.", "{n} is seeing {v}."],
    },
    "preference": {
        "values": {"colour": _COLOURS, "season": _SEASONS, "food": _FOODS, "music": _GENRES, "books": _BOOKS},
        "base": ["{n}'s favourite {c} is {v}."],
        "change": [("{n}'s favourite {c} is now {w}.", None), ("{n} now prefers {w} to {v}.", None),
                   ("{w} has become {n}'s favourite {c}.", None)],
        "refine": [("{n} has loved {v} since childhood.", "{n}'s favourite {c} is {v}, a love since childhood.")],
        "end": ["{n} no longer likes {v}.", "{n} has gone off {v}.", "{n} does not care for {v} anymore."],
        "paraphrase": ["{v} is {n}'s favourite {c}.", "{n} likes {v} more than any other {c}.",
                       "{n}'s top {c} is {v}."],
    },
    "habit": {
        "values": _HABITS,
        "base": ["{n} {v} {f}."],
        "change": [("{n} now {v} {g} instead of {f}.", None), ("{n} switched to {ving} {g}.", None)],
        "refine": [("{n} {v} {f} with a friend from work.", None),
                   ("{n} {v} {f}, usually for about an hour.", None)],
        "end": ["{n} stopped {ving}.", "{n} no longer {v}.", "{n} gave up {ving}.", "{n} quit {ving}."],
        "end_with_state": ["{n} stopped {ving} after an injury and now does yoga instead.",
                           "{n} gave up {ving} and took up hiking instead."],
        "paraphrase": ["{n} is in the habit of {ving} {f}.", "{n} regularly {v} {f}.",
                       "{n} makes a point of {ving} {f}."],
    },
    "car": {
        "values": _CARS,
        "base": ["{n} drives {v}."],
        "change": [("{n} now drives {w}.", None), ("{n} traded in the old car for {w}.", None)],
        "refine": [("{n} drives {v} that is ten years old.", None)],
        "end": ["{n} sold the car and no longer drives.", "{n} no longer owns {v}."],
        "end_and_new": [("{n} sold the car.", "{n} bought a bicycle for commuting."),
                        ("{n} gave up the car.", "{n} takes the train to work.")],
        "paraphrase": ["{n}'s car is {v}.", "{n} gets around in {v}.", "{n} owns and drives {v}."],
    },
    "language": {
        "values": _LANGUAGES,
        "base": ["{n} is learning {v}."],
        "change": [("{n} switched from learning {v} to learning {w}.", None),
                   ("{n} is now learning {w} instead of {v}.", None)],
        "refine": [("{n} is learning {v} with an online tutor twice a week.", None),
                   ("{n} is learning {v} to prepare for a trip next year.", None)],
        "end": ["{n} gave up learning {v}.", "{n} stopped studying {v}.", "{n} is no longer learning {v}."],
        "paraphrase": ["{n} is studying {v}.", "{n} takes {v} lessons.", "{n} has been learning {v}."],
        "addition": ["{n} is also learning {w}.", "{n} started learning {w} as well."],
        "start": ["{n} started learning {w}.", "{n} took up {w}.", "{n} enrolled in a {w} course."],
    },
    "instrument": {
        "values": _INSTRUMENTS,
        "base": ["{n} plays the {v}."],
        "change": [("{n} switched from the {v} to the {w}.", "{n} plays the {w}.")],
        "refine": [("{n} plays the {v} in a local band.", None),
                   ("{n} has played the {v} for over ten years.", None)],
        "end": ["{n} no longer plays the {v}.", "{n} quit playing the {v}.", "{n} sold the {v} and stopped playing."],
        "end_and_new": [("{n} quit the {v} lessons.", "{n} started taking {w} lessons.")],
        "start": ["{n} started playing the {w}.", "{n} took up the {w}.", "{n} bought a {w} and is learning it."],
        "paraphrase": ["{n} is a {v} player.", "{n} knows how to play the {v}.", "{n} plays {v} as a hobby."],
        "addition": ["{n} also plays the {w}.", "{n} is learning the {w} too."],
    },
}
"""Per attribute: ``values`` and wordings per edit (``change``/``refine``: ``(fact, text)``); ``start``
(where no ``change`` wording names the new value alone): how a new value begins, for the current-state
generation examples (:mod:`.current_state`)."""

# ---------------------------------------------------------------------------------------
# The richer recipe (``rich=True``; ``memlora distill --synthetic-rich``): more attributes,
# facts written the way the extraction expert writes them (a second clause), old memories
# with a detail. Values were chosen apart from the consolidation check's histories
# (memlora_engine/evaluation/data/consolidation.jsonl): a test checks that none of its
# values appears in these lists.

_EMPLOYERS = ["Unilever", "Philips", "Ericsson", "Heineken", "Adidas", "Airbus", "Maersk", "Novartis", "Accenture",
              "Canon", "Oracle", "Pfizer", "Danone", "Nintendo"]
_UNIVERSITIES = ["Leiden University", "the University of Porto", "McGill University", "Trinity College",
                 "Kyoto University", "ETH Zurich", "the University of Ghana", "Monash University", "Rice University"]
_PHONES = ["a Motorola Edge", "a Sony Xperia", "a Huawei P30", "a Xiaomi Redmi", "a Nothing Phone", "an Asus Zenfone",
           "an LG Velvet", "a Honor Magic"]
_SPORTS = ["tennis", "basketball", "rugby", "table tennis", "golf", "handball", "netball", "water polo", "baseball"]
_HOBBIES = ["knitting", "painting", "gardening", "birdwatching", "woodworking", "photography", "calligraphy",
            "sewing", "origami", "model trains"]
_DRINKS = ["green tea", "espresso", "black coffee", "lemonade", "chai", "sparkling water", "cola", "hot chocolate"]
_TEAMS = ["Arsenal", "Ajax", "Boca Juniors", "Celtic", "Juventus", "Galatasaray", "Feyenoord", "Napoli"]
_FLATMATES = ["Jonas", "Amelie", "Kenji", "Yara", "Felix", "Ines", "Malik", "Chloe", "Bruno", "Noor"]

EXTRA_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "employer": {
        "values": _EMPLOYERS,
        "base": ["{n} works at {v}.", "{n} is employed by {v}."],
        "change": [("{n} now works at {w}.", None), ("{n} left {v} and joined {w}.", None),
                   ("{n} started a new job at {w}.", None), ("{n} has just finished the first week at {w}.", None),
                   ("{n} accepted an offer from {w}.", None)],
        "refine": [("{n} works at {v} in the marketing team.", None), ("{n} has worked at {v} for four years.", None)],
        "end": ["{n} left {v}.", "{n} no longer works at {v}.", "{n} was let go from {v}."],
        "paraphrase": ["{n}'s employer is {v}.", "{n} has a job at {v}.", "{n} is on the staff of {v}."],
    },
    "university": {
        "values": _UNIVERSITIES,
        "base": ["{n} studies at {v}."],
        "change": [("{n} transferred to {w}.", None), ("{n} now studies at {w}.", None),
                   ("{n} switched universities and is at {w} now.", None)],
        "refine": [("{n} studies economics at {v}.", None), ("{n} is in the second year at {v}.", None)],
        "end": ["{n} dropped out of {v}.", "{n} no longer studies at {v}."],
        "paraphrase": ["{n} is a student at {v}.", "{n} attends {v}.", "{n} is enrolled at {v}."],
    },
    "phone": {
        "values": _PHONES,
        "base": ["{n} uses {v}.", "{n}'s phone is {v}."],
        "change": [("{n} got a new phone, {w}.", None), ("{n} replaced the old phone with {w}.", None),
                   ("{n} now uses {w}.", None), ("{n} switched to {w}.", None)],
        "refine": [("{n} uses {v} with a cracked screen.", None)],
        "end": ["{n} no longer uses {v}.", "{n} lost {v} and has no phone for now."],
        "paraphrase": ["{n} has {v} as a phone.", "{n}'s mobile is {v}."],
    },
    "sport": {
        "values": _SPORTS,
        "base": ["{n} plays {v}.", "{n} plays {v} at a local club."],
        "change": [("{n} took up {w} instead of {v}.", None), ("{n} now plays {w}.", None),
                   ("{n} switched from {v} to {w}.", None), ("{n} joined a {w} club.", None)],
        "refine": [("{n} plays {v} every Saturday morning.", None)],
        "end": ["{n} stopped playing {v}.", "{n} no longer plays {v}.", "{n} gave up {v} after a knee injury."],
        "paraphrase": ["{n} is a keen {v} player.", "{n} enjoys playing {v}."],
        "addition": ["{n} also plays {w} on weekends.", "{n} plays {w} as well."],
    },
    "hobby": {
        "values": _HOBBIES,
        "base": ["{n}'s hobby is {v}.", "{n} spends free time on {v}."],
        "change": [("{n} picked up {w} as a new hobby.", None), ("{n}'s new hobby is {w}.", None),
                   ("{n} has moved on from {v} to {w}.", None)],
        "refine": [("{n} has been into {v} since school.", None)],
        "end": ["{n} lost interest in {v}.", "{n} no longer does {v}."],
        "paraphrase": ["{n} enjoys {v} in free time.", "{n} is into {v}."],
        "addition": ["{n} has also taken up {w}.", "Besides {v}, {n} enjoys {w}."],
    },
    "drink": {
        "values": _DRINKS,
        "base": ["{n}'s usual drink is {v}."],
        "change": [("{n} now drinks {w} instead of {v}.", None), ("{n} switched to {w}.", None),
                   ("{n}'s usual drink is {w} these days.", None)],
        "end": ["{n} cut out {v} completely.", "{n} no longer drinks {v}."],
        "paraphrase": ["{n} usually drinks {v}.", "{n} mostly orders {v}."],
    },
    "team": {
        "values": _TEAMS,
        "base": ["{n} supports {v}."],
        "change": [("{n} now supports {w}.", None), ("{n} switched allegiance to {w}.", None)],
        "end": ["{n} stopped following {v}.", "{n} no longer supports {v}."],
        "paraphrase": ["{n} is a {v} fan.", "{n} cheers for {v}."],
    },
    "flatmate": {
        "values": _FLATMATES,
        "base": ["{n} shares a flat with {v}."],
        "change": [("{n}'s new flatmate is {w}.", None), ("{v} moved out and {w} took the room in {n}'s flat.", None),
                   ("{n} now lives with {w}.", None)],
        "end": ["{v} moved out of {n}'s flat.", "{n} no longer lives with {v}."],
        "paraphrase": ["{n} and {v} are flatmates.", "{n} lives with {v}."],
    },
}
"""Attributes the richer recipe adds to :data:`ATTRIBUTES`."""

CHANGE_DETAILS: tuple[str, ...] = (
    ", and it has been great so far", " and is still settling in", " after a lot of thought",
    ", which was a big decision", " last month", " at the start of the year", " and is really happy about it",
    ", though it took some getting used to", " a few weeks ago", ", and the change is going well",
    " to save some money", " for a fresh start", ", which nobody expected", " and has no regrets",
)
"""A second clause the richer recipe appends to a new fact (the extraction expert writes such facts)."""

BASE_DETAILS: tuple[str, ...] = (
    ", at least for now", ", as far as anyone knows", ", and it comes up often", ", something mentioned more than once",
    ", and that suits {n} well", " these days", ", and {n} seems happy with it",
)
"""A detail the richer recipe appends to a stored memory."""
