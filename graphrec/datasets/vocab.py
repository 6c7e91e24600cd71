"""Word lists for the synthetic demo data: one vocabulary per latent topic plus shared words.

Each :class:`Topic` carries the real English words its titles, descriptions and
tags are drawn from, the genre names its KG entities use, and the attribute
values it leans towards (category, country, era, audience age). Topic words are
disjoint across topics so that shared words between two items are evidence of a
shared topic; :data:`GENERIC_WORDS` and :data:`GENERIC_TAGS` are shared by every
topic and carry no signal.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CATEGORIES",
    "COUNTRIES",
    "COUNTRY_WEIGHTS",
    "DESCRIPTION_NOUNS",
    "DESCRIPTION_OPENINGS",
    "GENERIC_TAGS",
    "GENERIC_WORDS",
    "TOPICS",
    "Topic",
]


@dataclass(frozen=True)
class Topic:
    """One latent taste topic and the surface forms it generates.

    Attributes:
        name: short name (not written to any file; for reports and tests).
        genre: broad genre slug, the parent of ``subgenres`` in the KG.
        subgenres: genre slugs items of this topic are tagged with.
        category: the item category this topic mostly comes in.
        country: the country (code in :data:`COUNTRIES`) its creators and fans lean to.
        era: mean production year of its back catalogue.
        age: mean age of its fans.
        words: vocabulary of titles and descriptions.
        tags: vocabulary of item tags.
    """

    name: str
    genre: str
    subgenres: tuple[str, ...]
    category: str
    country: str
    era: int
    age: int
    words: tuple[str, ...]
    tags: tuple[str, ...]


def _topic(
    name: str,
    genre: str,
    subgenres: str,
    category: str,
    country: str,
    era: int,
    age: int,
    words: str,
    tags: str,
) -> Topic:
    return Topic(name, genre, tuple(subgenres.split()), category, country, era, age,
                 tuple(words.split()), tuple(tags.split()))


CATEGORIES = ("book", "film", "album", "podcast", "game", "course", "comic", "documentary")
COUNTRIES = ("US", "GB", "FR", "DE", "JP", "BR", "IN", "ES", "IT", "KR", "SE", "MX", "CA", "NG")
# Rough audience sizes: the country a user comes from when taste does not decide it.
COUNTRY_WEIGHTS = (0.22, 0.10, 0.07, 0.08, 0.08, 0.07, 0.09, 0.05, 0.04, 0.04, 0.03, 0.04, 0.05, 0.04)

TOPICS: tuple[Topic, ...] = (
    _topic("space", "science-fiction", "space-opera cyberpunk hard-sf", "book", "US", 1995, 31,
           "galaxy orbit rocket nebula asteroid starship alien planet comet cosmos astronaut "
           "satellite quasar gravity lunar solar eclipse telescope android cyborg warp colony "
           "pulsar meteor capsule martian interstellar spaceport",
           "aliens robots time-travel first-contact dystopia space-exploration"),
    _topic("romance", "romance", "historical-romance rom-com love-story", "book", "GB", 2008, 34,
           "love heart wedding kiss desire passion sweetheart bride letters promise honeymoon "
           "flirt darling embrace valentine rose moonlight devotion longing courtship vow beloved "
           "engagement soulmate serenade bouquet tenderness",
           "feel-good slow-burn second-chance enemies-to-lovers heartwarming"),
    _topic("crime", "crime", "police-procedural noir true-crime", "film", "US", 1990, 42,
           "murder detective alibi clue suspect police heist witness verdict inspector corpse "
           "motive forensic gangster evidence ransom smuggler interrogation fugitive cartel "
           "homicide precinct prosecutor kidnapping robbery mugshot informant",
           "whodunit gritty twist investigation courtroom"),
    _topic("fantasy", "fantasy", "epic-fantasy sword-and-sorcery fairy-tale", "book", "GB", 2002, 27,
           "dragon wizard sorcery sword quest kingdom elf enchanted throne prophecy goblin castle "
           "spell realm knight amulet rune dungeon troll oracle griffin sorceress chalice paladin "
           "necromancer citadel dwarf",
           "magic chosen-one mythical-creatures worldbuilding epic-battles"),
    _topic("jazz", "jazz", "bebop swing cool-jazz", "album", "US", 1965, 48,
           "saxophone trumpet groove improvisation ballad blues rhythm trombone nightclub melody "
           "syncopation bassline pianist drummer harlem smoky riff solo vibraphone clarinet "
           "quintet crooner jam scat bandleader",
           "live-recording instrumental vinyl late-night big-band"),
    _topic("cooking", "food", "baking vegetarian street-food", "course", "IT", 2015, 38,
           "recipe kitchen bread pasta spice grill flavor sauce dessert garlic chef pantry "
           "ferment roast harvest soup herbs pastry feast noodles dumpling risotto tortilla "
           "marinade skillet curry sourdough",
           "easy-recipes comfort-food healthy-eating weeknight plant-based"),
    _topic("history", "history", "military-history ancient-history biography", "documentary", "GB", 1985, 55,
           "empire revolution battle dynasty ancient medieval treaty pharaoh colonial crusade "
           "republic archive siege monarchy legion conquest chronicle rebellion parliament "
           "artifact emperor samurai viking centurion trench armada",
           "world-war antiquity true-story primary-sources civilization"),
    _topic("sports", "sports", "football motorsport athletics", "documentary", "BR", 2012, 33,
           "stadium championship marathon coach league athlete tournament goalkeeper olympic "
           "rookie dribble sprint trophy referee playoff boxing cycling victory striker "
           "racetrack podium underdog comeback penalty halftime",
           "inspirational behind-the-scenes competition teamwork fandom"),
    _topic("horror", "horror", "supernatural-horror slasher gothic", "film", "US", 1992, 26,
           "haunted ghost vampire zombie nightmare cursed demon crypt scream graveyard possession "
           "ritual werewolf coffin blood eerie asylum phantom occult poltergeist exorcism "
           "banshee cellar lantern seance",
           "scary jump-scares creepy cult-classic dark"),
    _topic("nature", "nature", "wildlife ocean-life conservation", "documentary", "SE", 2010, 45,
           "forest river wildlife ocean mountain glacier savanna rainforest coral migration eagle "
           "wolf meadow wilderness tundra whale blossom volcano reef otter fjord moss "
           "orchid pollinator estuary beetle",
           "climate outdoors animals ecology stunning-visuals"),
    _topic("technology", "technology", "programming artificial-intelligence cybersecurity", "course", "US", 2018, 29,
           "algorithm software python database network robotics silicon encryption cloud "
           "processor interface compiler hacker automation circuit neural server protocol "
           "kernel firmware debugging microchip bandwidth dataset blockchain",
           "hands-on beginner-friendly coding machine-learning open-source"),
    _topic("business", "business", "entrepreneurship investing management", "podcast", "US", 2014, 40,
           "market investor stock profit strategy entrepreneur leadership negotiation economy "
           "banking dividend portfolio merger capital budget revenue inflation venture wealth "
           "shareholder boardroom franchise ledger payroll tycoon",
           "career productivity money self-improvement case-studies"),
    _topic("comedy", "comedy", "sitcom stand-up satire", "film", "GB", 2005, 30,
           "laughter joke prank parody blunder clown roommate mishap banter hilarious awkward "
           "spoof slapstick chaos quirky punchline goofy sidekick hijinks wisecrack fiasco "
           "shenanigans nitwit kooky zany",
           "funny lighthearted absurd witty ensemble-cast"),
    _topic("travel", "travel", "adventure-travel food-travel road-trip", "book", "FR", 2011, 37,
           "journey passport island voyage backpack coastline harbor caravan desert expedition "
           "postcard railway village safari compass lighthouse nomad itinerary bazaar "
           "archipelago hostel ferry oasis pilgrimage riviera",
           "wanderlust travel-guide off-the-beaten-path culture memoir"),
    _topic("classical", "classical", "baroque romantic-era opera", "album", "DE", 1975, 57,
           "symphony concerto sonata orchestra violin overture cello nocturne requiem fugue "
           "conductor aria chamber prelude harpsichord etude maestro soprano libretto cantata "
           "minuet oboe philharmonic serenata waltz",
           "orchestral piano-solo masterpiece recital remastered"),
    _topic("fitness", "health", "yoga strength-training nutrition", "course", "CA", 2019, 35,
           "workout nutrition wellness meditation muscle cardio stretching sleep mindfulness "
           "diet strength recovery posture breathing stamina vitamin pilates habit treadmill "
           "kettlebell hydration endurance flexibility protein mobility",
           "home-workout wellbeing motivation mental-health routine"),
    _topic("spy", "thriller", "espionage political-thriller action-thriller", "film", "GB", 1988, 44,
           "spy espionage agent cipher conspiracy defector surveillance mole embassy dossier "
           "codename handler safehouse sabotage intelligence covert extraction assassin "
           "diplomat infiltration wiretap decoy blackmail checkpoint traitor",
           "cold-war suspense page-turner twists international"),
    _topic("kids", "children", "picture-book animation bedtime-story", "comic", "JP", 2016, 36,
           "puppy playground birthday treehouse bedtime teddy friendship classroom rainbow "
           "unicorn picnic kitten crayon lullaby dinosaur pirate balloon sandcastle giggle "
           "bunny cupcake puddle scooter mermaid tiptoe",
           "family-friendly read-aloud colorful educational ages-3-7"),
    _topic("art", "art", "painting architecture photography", "book", "FR", 1998, 46,
           "painting canvas sculpture gallery portrait watercolor typography architecture museum "
           "sketch palette pottery mosaic fresco studio illustration photography modernist brush "
           "charcoal easel lithograph bauhaus calligraphy atelier",
           "art-history creativity design-inspiration visual coffee-table"),
    _topic("western", "western", "spaghetti-western frontier-drama revisionist-western", "film", "MX", 1970, 52,
           "cowboy outlaw sheriff saloon ranch stagecoach gunslinger prairie bounty cattle "
           "revolver posse homestead mustang desperado rodeo wagon mesa frontier lasso "
           "tumbleweed canyon marshal corral bandit",
           "wild-west shootout classic-western lawman dusty"),
)

# Shared by every topic: they make text look natural and dilute, but never create, topic signal.
GENERIC_WORDS = tuple(
    "story life world time night day tale guide road secrets lessons moments voices "
    "edition collection chronicles reflections return rise fall beyond inside between "
    "legacy echoes notes diary season chapter path dream memory".split()
)
# Singular nouns that fit "A gripping ___ of ..." in descriptions.
DESCRIPTION_NOUNS = ("story", "tale", "account", "celebration", "study", "exploration", "look", "saga")
GENERIC_TAGS = ("bestseller", "award-winning", "new-release", "classic", "staff-pick", "hidden-gem")
DESCRIPTION_OPENINGS = (
    "A gripping", "An unforgettable", "A quiet", "A bold", "A charming", "A sweeping",
    "A thoughtful", "An offbeat", "A vivid", "A surprising",
)
