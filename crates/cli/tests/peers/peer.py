"""Third-party peers for threatfeed's integration tests: the OASIS TAXII 2.1 client, the OASIS
STIX 2.1 validator and PyMISP, each driven against a running server or its output. Every
subcommand prints one JSON object on stdout; failures raise (non-zero exit, traceback).

    peer.py taxii BASE_URL TOKEN PER_REQUEST   discovery, API root, collections, paging, POST, status
    peer.py validate FILE...                   stix2-validator on bundles / envelopes
    peer.py misp DIR                           load a MISP feed directory with PyMISP
"""
import json
import sys


def taxii(base, token, per_request):
    from taxii2client.v21 import Server, as_pages

    server = Server(base.rstrip("/") + "/taxii2/", user="threatfeed", password=token)
    api_root = server.default or server.api_roots[0]
    collections = {c.title: c for c in api_root.collections}
    out = {
        "server_title": server.title,
        "api_root_title": api_root.title,
        "versions": api_root.versions,
        "collections": sorted(collections),
        "pages": {},
    }
    for title, col in collections.items():
        seen = []
        pages = 0
        for envelope in as_pages(col.get_objects, per_request=per_request):
            pages += 1
            for o in envelope.get("objects", []):
                seen.append([o["id"], o.get("modified", o.get("created", ""))])
        manifest = []
        for envelope in as_pages(col.get_manifest, per_request=per_request):
            manifest.extend(m["id"] for m in envelope.get("objects", []))
        out["pages"][title] = {
            "objects": len(seen),
            "distinct": len({tuple(s) for s in seen}),
            "pages": pages,
            "manifest": len(manifest),
            "ids": sorted({s[0] for s in seen}),
        }
    ind = collections["Indicators"]
    envelope = {
        "objects": [
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
                "created": "2026-06-01T00:00:00.000Z",
                "modified": "2026-06-01T00:00:00.000Z",
                "name": "peer C2",
                "pattern": "[domain-name:value = 'taxii-peer-c2.example']",
                "pattern_type": "stix",
                "valid_from": "2026-06-01T00:00:00Z",
            },
            {
                "type": "malware",
                "spec_version": "2.1",
                "id": "malware--31b940d4-6f7f-459a-80ea-9c1f17b5891b",
                "created": "2026-06-01T00:00:00.000Z",
                "modified": "2026-06-01T00:00:00.000Z",
                "name": "Not for this collection",
                "is_family": True,
            },
        ]
    }
    status = ind.add_objects(envelope)
    again = api_root.get_status(status.id)
    out["status"] = {
        "status": again.status,
        "total_count": again.total_count,
        "success_count": again.success_count,
        "failure_count": again.failure_count,
        "successes": [s["id"] for s in again.successes],
        "failures": [f["id"] for f in again.failures],
    }
    print(json.dumps(out))


def validate(files):
    from stix2validator import ValidationOptions, validate_file

    results = []
    for f in files:
        r = validate_file(f, ValidationOptions(strict=False))
        errors = []
        warnings = []
        for obj in r.object_results:
            errors.extend(f"{obj.object_id}: {e}" for e in obj.errors)
            warnings.extend(f"{obj.object_id}: {w}" for w in obj.warnings)
        if r.fatal:
            errors.append(f"fatal: {r.fatal.message}")
        results.append({"file": f, "is_valid": bool(r.is_valid), "errors": errors, "warnings": warnings})
    print(json.dumps(results))


def misp(directory):
    import os

    from pymisp import MISPEvent

    with open(os.path.join(directory, "manifest.json")) as fh:
        manifest = json.load(fh)
    events = []
    for uuid in manifest:
        ev = MISPEvent()
        ev.load_file(os.path.join(directory, f"{uuid}.json"))
        events.append(
            {
                "uuid": ev.uuid,
                "info": ev.info,
                "attributes": len(ev.attributes),
                "types": sorted({a.type for a in ev.attributes}),
                "tags": sorted(t.name for t in ev.tags),
                "values": sorted(a.value for a in ev.attributes),
            }
        )
    with open(os.path.join(directory, "hashes.csv")) as fh:
        hashes = [line.strip().split(",") for line in fh if line.strip()]
    print(json.dumps({"events": events, "hashes": len(hashes), "hash_events": sorted({h[1] for h in hashes})}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "taxii":
        taxii(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "validate":
        validate(sys.argv[2:])
    elif cmd == "misp":
        misp(sys.argv[2])
    else:
        raise SystemExit(f"unknown command {cmd}")
