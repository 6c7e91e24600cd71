"""A tiny data set in the demo-data file formats, with answers known by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# (user, item, timestamp, event); u1-i1 repeats three times, u2-i3 twice.
EVENTS = [
    ("u1", "i1", 100, "view"), ("u1", "i1", 105, "click"), ("u1", "i1", 110, "purchase"),
    ("u1", "i2", 120, "view"), ("u1", "i3", 130, "view"), ("u1", "i4", 140, "click"),
    ("u2", "i3", 200, "view"), ("u2", "i3", 210, "view"), ("u2", "i1", 220, "purchase"),
    ("u2", "i5", 230, "view"), ("u3", "i2", 300, "click"), ("u3", "i4", 310, "view"),
    ("u3", "i5", 320, "view"), ("u3", "i1", 330, "view"), ("u3", "i3", 340, "purchase"),
]
ITEMS = """item_id,title,description,category,tags,price,year
i1,Space Rocket,"A long tale of rockets, orbits and the crew that flies them, told slowly.",film,space|crew,9.99,1999
i2,Love Letter,"A quiet romance about letters sent across the sea for many, many years.",book,romance,5.00,2005
i3,Murder Clue,"A detective follows a clue through a city where nobody tells the truth.",film,crime|city,12.50,2011
i4,Dragon Quest,"Wizards, dragons and a quest for a sword that may not exist at all, really.",game,magic|quest,30.00,2018
i5,Cold Orbit,"Another story in orbit; the station goes quiet and the crew must find out why.",film,space,7.25,2021
i6,Never Seen,"A catalogue item that no user has interacted with yet, in the long tail.",book,,3.50,2023
"""
USERS = "user_id,age,country\nu1,23,BR\nu2,35,DE\nu3,51,BR\nu4,44,FR\n"
KG = "head\trelation\ttail\ni1\tcreated_by\tcreator:1\ni5\tcreated_by\tcreator:1\ni3\tcreated_by\tcreator:2\ncreator:1\tborn_in\tcountry:BR\ni1\tsequel\ti5\n"
SOCIAL = "user_id,friend_id\nu1,u2\nu2,u3\nu1,u2\nu5,u1\n"


def write_demo(directory: Path, log_format: str = "csv") -> dict[str, Path]:
    """Write the data set; the log as csv, tsv, parquet or jsonl."""
    directory.mkdir(parents=True, exist_ok=True)
    columns = ("user_id", "item_id", "timestamp", "event")
    log = directory / f"interactions.{log_format}"
    if log_format in ("csv", "tsv"):
        sep = "," if log_format == "csv" else "\t"
        log.write_text(sep.join(columns) + "\n" + "".join(sep.join(map(str, e)) + "\n" for e in EVENTS))
    elif log_format == "parquet":
        pq.write_table(pa.table({c: [e[i] for e in EVENTS] for i, c in enumerate(columns)}), log)
    elif log_format == "jsonl":
        log.write_text("".join(json.dumps(dict(zip(columns, e))) + "\n" for e in EVENTS))
    files = {"interactions": log}
    for name, text in (("items.csv", ITEMS), ("users.csv", USERS), ("kg.tsv", KG), ("social.csv", SOCIAL)):
        path = directory / name
        path.write_text(text)
        files[name.split(".")[0]] = path
    return files
