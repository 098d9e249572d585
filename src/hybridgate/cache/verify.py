"""What a semantic-cache hit must keep: the parts of a question that change its answer.

Embeddings put "convert 5 miles to km" next to "convert 5 km to miles", and a question
next to its negation, closer than two honest paraphrases; no similarity threshold can tell
them apart. So a cached answer is reused only when the new question has the same
*signature* as the cached one: the same numbers (digits and number words alike, in order),
units (given after a number, or asked for), negations (how many), polar words
(largest / smallest, before / after, ..., in order), code languages, names (capitalised
words, acronyms, in order) and quoted strings. A paraphrase keeps all of these; the near
misses that embeddings confuse change one. (A sentence's first word is not taken for a
name: "Quick question: ..." and "Hey, ..." must not count.)

One pass of one regex over the text (bounded by the caller), so linear in its length.
"""

from __future__ import annotations

import hashlib
import re

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[A-Za-z][A-Za-z0-9+#]*(?:'[a-z]+)?|\"[^\"\n]{0,200}\"|"
                    r"`[^`\n]{0,200}`|[.!?;:\n]")

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                     "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100",
                     "thousand": "1000", "million": "1000000", "billion": "1000000000",
                     "dozen": "12", "twice": "2", "double": "2", "half": "0.5", "once": "1"})

_UNIT_GROUPS = {
    "km": "km kms kilometer kilometers kilometre kilometres",
    "mi": "mi mile miles", "m": "meter meters metre metres", "cm": "cm centimeter centimeters "
    "centimetre centimetres", "mm": "mm millimeter millimeters", "ft": "ft foot feet",
    "in": "inch inches", "yd": "yd yard yards", "kg": "kg kgs kilogram kilograms kilo kilos",
    "g": "gram grams", "lb": "lb lbs pound pounds", "oz": "oz ounce ounces",
    "t": "ton tons tonne tonnes", "l": "liter liters litre litres", "ml": "ml milliliter "
    "milliliters millilitre millilitres", "gal": "gal gallon gallons", "c": "celsius centigrade",
    "f": "fahrenheit", "k": "kelvin", "s": "sec secs second seconds", "min": "minute minutes",
    "h": "hr hrs hour hours", "day": "day days", "week": "week weeks", "month": "month months",
    "year": "year years", "mph": "mph", "kmh": "kmh kph", "usd": "usd dollar dollars",
    "eur": "eur euro euros", "gbp": "gbp sterling", "jpy": "jpy yen", "byte": "byte bytes",
    "kb": "kb kilobyte kilobytes", "mb": "mb megabyte megabytes", "gb": "gb gigabyte "
    "gigabytes", "tb": "tb terabyte terabytes", "w": "watt watts", "kw": "kw kilowatt "
    "kilowatts", "j": "joule joules", "cal": "cal calorie calories kcal", "acre": "acre acres",
    "ha": "hectare hectares", "percent": "percent percentage",
}
UNITS = {w: unit for unit, words in _UNIT_GROUPS.items() for w in words.split()}

# polar words: each maps to its pole, so a synonym keeps the pole and an antonym flips it
_POLES = {
    "largest": "biggest greatest largest", "smallest": "smallest tiniest",
    "larger": "larger bigger greater", "smaller": "smaller", "most": "most",
    "least": "least fewest", "more": "more", "less": "less fewer", "max": "max maximum",
    "min": "min minimum", "increase": "increase increases increasing rise raise",
    "decrease": "decrease decreases decreasing reduce lower fall", "before": "before prior",
    "after": "after", "above": "above over", "below": "below under beneath",
    "higher": "higher", "lowest": "lowest", "highest": "highest", "best": "best",
    "worst": "worst", "better": "better", "worse": "worse", "first": "first earliest",
    "last": "last latest final", "true": "true correct", "false": "false incorrect wrong",
    "longest": "longest", "shortest": "shortest", "oldest": "oldest", "youngest": "youngest",
    "fastest": "fastest quickest", "slowest": "slowest", "positive": "positive",
    "negative": "negative", "inside": "inside", "outside": "outside", "add": "add",
    "remove": "remove delete subtract", "ascending": "ascending", "descending": "descending",
    "advantages": "advantage advantages pros benefits", "disadvantages": "disadvantage "
    "disadvantages cons drawbacks", "cause": "cause causes", "effect": "effect effects",
    "left": "left", "right": "right", "north": "north", "south": "south", "east": "east",
    "west": "west", "early": "early earlier", "late": "late later",
    "minimize": "minimize minimise", "maximize": "maximize maximise",
    "encrypt": "encrypt encode", "decrypt": "decrypt decode", "import": "import imports",
    "export": "export exports", "buy": "buy purchase", "sell": "sell", "win": "win",
    "lose": "lose", "always": "always", "sometimes": "sometimes", "except": "except",
}
POLES = {w: pole for pole, words in _POLES.items() for w in words.split()}

LANGUAGES = {w: lang for lang, words in {
    "python": "python py python3", "javascript": "javascript js node nodejs",
    "typescript": "typescript ts", "java": "java", "c": "c", "cpp": "c++ cpp",
    "csharp": "c# csharp", "go": "golang", "rust": "rust", "ruby": "ruby", "php": "php",
    "kotlin": "kotlin", "swift": "swift", "scala": "scala", "haskell": "haskell",
    "sql": "sql", "bash": "bash shell sh zsh powershell", "perl": "perl", "lua": "lua",
    "dart": "dart", "julia": "julia", "matlab": "matlab", "elixir": "elixir",
    "html": "html", "css": "css", "r": "r", "fortran": "fortran", "cobol": "cobol",
}.items() for w in words.split()}
_CASED_LANGUAGES = {"C", "R", "Go"}  # names that are also words: counted when capitalised

NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "neither", "nor",
             "without", "nowhere", "non"}

# words that, capitalised mid-sentence (Title Case), still name nothing
_PLAIN = set("""a an the i you we they he she it my your our their this that these those
what which who whom whose when where why how is are was were be been do does did can could
should would will shall may might must have has had please tell give write explain describe
list find show make create convert calculate compute name define compare summarize summarise
translate suggest help let in on at for from by with of to and or but if as so then also
there here some any all each every one many much few which's what's how's who's consider
assume suppose imagine given using use select choose identify determine evaluate discuss
provide generate draft compose rewrite answer solve prove check hi hello hey thanks thank
yes ok okay now today again why's true false most more less least both either""".split())


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text)


def signature(text: str) -> tuple[tuple[str, ...], ...]:
    """The answer-changing parts of ``text``, in a comparable form."""
    numbers: list[str] = []
    given: list[str] = []
    wanted: list[str] = []
    poles: list[str] = []
    names: list[str] = []
    quotes: list[str] = []
    langs: set[str] = set()
    negations = 0
    start = True  # at a sentence start
    since_number = 99  # words since the last number
    for tok in _words(text):
        if tok in ".!?;:\n":
            start, since_number = True, 99
            continue
        if tok[0] in "\"`":
            quotes.append(" ".join(tok[1:-1].lower().split()))
            start, since_number = False, since_number + 1
            continue
        low = tok.lower()
        if "'" in low:
            stem, _, tail = low.partition("'")
            if tail == "t":  # isn't, can't, won't
                negations += 1
                stem = {"can": "can", "won": "will"}.get(stem, stem[:-1])
            low, tok = stem, tok[:len(stem)]
        if tok[0].isdigit():
            numbers.append(tok.replace(",", "").rstrip("0").rstrip(".")
                           if "." in tok else tok.replace(",", ""))
            start, since_number = False, 0
            continue
        if low in NUMBER_WORDS:
            numbers.append(NUMBER_WORDS[low])
            since_number = -1  # counted up to 0 below
        elif low in NEGATIONS or low == "cannot":
            negations += 1
        elif low in POLES:
            poles.append(POLES[low])
        if low in UNITS and (len(low) > 2 or since_number == 0 or low in ("km", "kg", "mph")):
            # a unit just after a number ("15 degrees F") is given; any other is asked
            (given if since_number <= 1 else wanted).append(UNITS[low])
        elif low in LANGUAGES and (low not in ("c", "r", "go", "sh")
                                   or tok in _CASED_LANGUAGES):
            langs.add(LANGUAGES[low])
        elif tok[0].isupper() and not start and low not in _PLAIN:
            names.append(low)  # a sentence's first word is capitalised anyway
        elif any(ch.isupper() for ch in tok[1:]) or (len(tok) > 1 and any(
                ch.isdigit() for ch in tok)):
            names.append(low)  # iPhone, GPT4, x86
        start, since_number = False, since_number + 1
    return (tuple(numbers), tuple(sorted(given)), tuple(sorted(wanted)), (str(negations),),
            tuple(poles),
            tuple(sorted(langs)), tuple(names), tuple(quotes))


def fingerprint(text: str) -> int:
    """A 64-bit hash of ``signature(text)``: what an index entry keeps to verify a hit."""
    blob = "\x1f".join("\x1e".join(part) for part in signature(text)).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little", signed=True)
