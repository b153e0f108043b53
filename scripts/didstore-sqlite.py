#!/usr/bin/env python3
"""Measures the DID index's storage in SQLite, for the README's storage
decision (issue 13); examples/didstore.rs does the same with redb.

    scripts/didstore-sqlite.py DIR DIDS_FILE

Reads every operation's DID of the archive DIR (zstd -dc of each bundle)
and stores the same records plc-index stores, a 15-byte DID key with the
bundle and position (src/did/store.rs), in a WITHOUT ROWID table keyed by
(key, bundle, pos), one transaction per bundle as an incremental indexer
would commit them (journal_mode=WAL, synchronous=FULL). Prints the build
time (without reading the bundles), the file size, and the time to find
the locations of every DID of DIDS_FILE (one per line).

The key is computed as plc-index computes it: the 120 bits of a did:plc
identifier's 24 base32 characters, else the first 15 bytes of its SHA-256.
"""
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

B32 = "abcdefghijklmnopqrstuvwxyz234567"


def did_key(did):
    ident = did[len("did:plc:"):] if did.startswith("did:plc:") else None
    if ident is not None and len(ident) == 24 and all(c in B32 for c in ident):
        return sum(B32.index(c) << (5 * (23 - i)) for i, c in enumerate(ident)).to_bytes(15, "big")
    return hashlib.sha256(did.encode()).digest()[:15]


def main():
    repo, dids_file = sys.argv[1:3]
    index = json.load(open(os.path.join(repo, "plc_bundles.json")))
    bundles = []
    for e in index["bundles"]:
        n = e["bundle_number"]
        content = subprocess.run(
            ["zstd", "-dc", "-q", os.path.join(repo, "%06d.jsonl.zst" % n)],
            check=True, capture_output=True).stdout
        bundles.append([(did_key(json.loads(line)["did"]), n, pos)
                        for pos, line in enumerate(content.splitlines())])
    ops = sum(len(b) for b in bundles)
    fd, path = tempfile.mkstemp(suffix=".sqlite")
    os.close(fd)
    os.unlink(path)
    t = time.monotonic()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE locs (key BLOB, bundle INTEGER, pos INTEGER,"
               " PRIMARY KEY (key, bundle, pos)) WITHOUT ROWID")
    for records in bundles:
        db.execute("BEGIN")
        db.executemany("INSERT INTO locs VALUES (?, ?, ?)", records)
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    build = time.monotonic() - t
    size = os.path.getsize(path)
    wanted = open(dids_file).read().split()
    t = time.monotonic()
    found = 0
    for did in wanted:
        found += len(db.execute("SELECT bundle, pos FROM locs WHERE key = ?",
                                (did_key(did),)).fetchall())
    lookup = time.monotonic() - t
    db.close()
    for p in (path, path + "-wal", path + "-shm"):
        if os.path.exists(p):
            os.unlink(p)
    print("sqlite %s: %d records, build %.2f s (%d commits), %d bytes (%.1f per record),"
          " %d lookups %.1f ms (%d locations)" % (
              sqlite3.sqlite_version, ops, build, len(bundles), size, size / ops,
              len(wanted), lookup * 1e3, found))


if __name__ == "__main__":
    main()
