"""Validates a JSON document against one of the official schemas kept in ../schemas (offline).

usage: validate.py SCHEMA_FILE DOCUMENT_FILE; exit 0 when valid, 1 with the errors otherwise.
Works with python3-jsonschema 4.10 (Debian 12, RefResolver) and newer releases (referencing).
"""
import json
import pathlib
import sys

import jsonschema

schema_path = pathlib.Path(sys.argv[1]).resolve()
schemas = {p.name: json.loads(p.read_text()) for p in schema_path.parent.glob("*.json")}
schema = schemas[schema_path.name]
doc = json.loads(pathlib.Path(sys.argv[2]).read_text())
cls = jsonschema.validators.validator_for(schema)
try:
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT7)) for s in schemas.values() if "$id" in s
    )
    validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
except ImportError:
    store = {s["$id"]: s for s in schemas.values() if "$id" in s}
    resolver = jsonschema.RefResolver(base_uri=schema.get("$id", ""), referrer=schema, store=store)
    validator = cls(schema, resolver=resolver, format_checker=cls.FORMAT_CHECKER)
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
for e in errors[:20]:
    print(f"{'/'.join(map(str, e.path))}: {e.message}")
sys.exit(1 if errors else 0)
