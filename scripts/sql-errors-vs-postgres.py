#!/usr/bin/env python3
"""sql-errors-vs-postgres.py — runs typical SQL mistakes through `semstream shell` and through psql
against a PostgreSQL server, and prints the Markdown table of docs/SQL.md "Errors compared with
PostgreSQL" (both real messages, side by side).

usage: scripts/sql-errors-vs-postgres.py [--semstream build/semstream] [--psql-args '-h HOST -p PORT -U USER']

PostgreSQL gets the same schema (BIGINT for INT, DOUBLE PRECISION for REAL) and, where semstream
writes CREATE CONTINUOUS VIEW or CREATE STREAM, CREATE VIEW or CREATE TABLE. Start a throw-away
server, e.g.:  initdb -D /tmp/pg -A trust && pg_ctl -D /tmp/pg -o '-k /tmp -p 55432' start
"""
import argparse, os, re, shlex, subprocess, tempfile

SS_SCHEMA = """CREATE STREAM orders (id INT KEY, status TEXT, amount REAL, qty INT, customer TEXT);
CREATE STREAM customers (name TEXT KEY, tier TEXT, status TEXT);"""
PG_SCHEMA = """DROP TABLE IF EXISTS orders, customers, s CASCADE;
CREATE TABLE orders (id BIGINT PRIMARY KEY, status TEXT, amount DOUBLE PRECISION, qty BIGINT, customer TEXT);
CREATE TABLE customers (name TEXT PRIMARY KEY, tier TEXT, status TEXT);"""

V = "CREATE CONTINUOUS VIEW v AS "
P = "CREATE VIEW v AS "
CASES = [  # (mistake, semstream statement, PostgreSQL statement)
    ("misspelled column", V + "SELECT id, amout FROM orders", P + "SELECT id, amout FROM orders"),
    ("misspelled stream/table", V + "SELECT id FROM ordrs", P + "SELECT id FROM ordrs"),
    ("ambiguous column in a join", V + "SELECT status FROM orders o JOIN customers c ON o.customer = c.name",
     P + "SELECT status FROM orders o JOIN customers c ON o.customer = c.name"),
    ("column neither grouped nor aggregated", V + "SELECT status, amount, COUNT(*) AS n FROM orders GROUP BY status",
     P + "SELECT status, amount, COUNT(*) AS n FROM orders GROUP BY status"),
    ("aggregate in WHERE", V + "SELECT status FROM orders WHERE COUNT(*) > 1",
     P + "SELECT status FROM orders WHERE COUNT(*) > 1"),
    ("TEXT compared with a number", V + "SELECT id FROM orders WHERE status > 5", P + "SELECT id FROM orders WHERE status > 5"),
    ("a string that is not a number", V + "SELECT id FROM orders WHERE amount = 'abc'",
     P + "SELECT id FROM orders WHERE amount = 'abc'"),
    ("join of TEXT to INT", V + "SELECT o.id FROM orders o JOIN customers c ON o.qty = c.name",
     P + "SELECT o.id FROM orders o JOIN customers c ON o.qty = c.name"),
    ("a number as a condition", V + "SELECT id FROM orders WHERE qty", P + "SELECT id FROM orders WHERE qty"),
    ("HAVING that is not a condition", V + "SELECT status, COUNT(*) AS n FROM orders GROUP BY status HAVING COUNT(*)",
     P + "SELECT status, COUNT(*) AS n FROM orders GROUP BY status HAVING COUNT(*)"),
    ("misspelled function", V + "SELECT lenght(status) AS n FROM orders", P + "SELECT lenght(status) AS n FROM orders"),
    ("wrong number of arguments", V + "SELECT substr(status) AS s FROM orders", P + "SELECT substr(status) AS s FROM orders"),
    ("wrong argument type", V + "SELECT lower(qty) AS s FROM orders", P + "SELECT lower(qty) AS s FROM orders"),
    ("arithmetic on TEXT", V + "SELECT status + 1 AS x FROM orders", P + "SELECT status + 1 AS x FROM orders"),
    ("COALESCE of TEXT and a number", V + "SELECT COALESCE(status, 0) AS s FROM orders",
     P + "SELECT COALESCE(status, 0) AS s FROM orders"),
    ("the same output name twice", V + "SELECT id, qty AS id FROM orders", P + "SELECT id, qty AS id FROM orders"),
    ("misspelled keyword", "SELEC id FROM v", "SELEC id FROM orders"),
    ("trailing comma", V + "SELECT id, FROM orders", P + "SELECT id, FROM orders"),
    ("a value of the wrong type", "INSERT INTO orders VALUES ('x', 'open', 1.5, 2, 'ann')",
     "INSERT INTO orders VALUES ('x', 'open', 1.5, 2, 'ann')"),
    ("misspelled option", "CREATE STREAM s (a INT) WITH (topc = 'x')", "CREATE TABLE s (a INT) WITH (fillfactr = 10)"),
]


def query_col(stmt, col, prefix):
    """A 1-based column in stmt, made relative to the text after the CREATE ... AS prefix."""
    return col - len(prefix) if prefix and stmt.startswith(prefix) and col > len(prefix) else col


def semstream(binary, stmt):
    with tempfile.TemporaryDirectory() as d:
        script = SS_SCHEMA + "\nCREATE CONTINUOUS VIEW okv AS SELECT id FROM orders;\n" + stmt + ";\n"
        p = subprocess.run([binary, "shell", "--db", os.path.join(d, "s.db")], input=script, text=True,
                           capture_output=True, timeout=120)
        out = p.stdout + p.stderr
        m = re.search(r"ERROR: <stdin>:4:(\d+): (.*)", out)
        if not m:
            return "(no error) " + out.strip().splitlines()[-1]
        return "%d: %s" % (query_col(stmt, int(m.group(1)), V), m.group(2))


def postgres(psql, stmt):
    p = subprocess.run(psql + ["-X", "-q", "-v", "ON_ERROR_STOP=0"], input=PG_SCHEMA + "\n" + stmt + ";\n",
                       text=True, capture_output=True, timeout=60)
    err = p.stderr
    m = re.search(r"ERROR:\s+(.*)", err)
    if not m:
        return "(no error)"
    msg = m.group(1).strip()
    lm = re.search(r"LINE \d+: (.*)\n(\s*)\^", err)
    if lm:
        shown, caret = lm.group(1), len(lm.group(2)) - len("LINE 1: ")
        if shown.startswith("..."):  # psql shows a long line from the middle: find where
            excerpt = shown[3:].rstrip(".")
            caret += stmt.find(excerpt[:20]) - 3
        msg = "%d: %s" % (query_col(stmt, caret + 1, P), msg)
    hm = re.search(r"HINT:\s+(.*)", err)
    if hm:
        msg += " — HINT: " + hm.group(1).strip()
    return msg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--semstream", default="build/semstream")
    ap.add_argument("--psql-args", default="-h /tmp/sqf/pgsock -p 55432 -U postgres")
    a = ap.parse_args()
    psql = ["psql"] + shlex.split(a.psql_args)
    print("| # | mistake | semstream (col: message) | PostgreSQL 15 (col: message) |")
    print("|---|---|---|---|")
    for i, (what, ss, pg) in enumerate(CASES, 1):
        s, p = semstream(a.semstream, ss), postgres(psql, pg)
        esc = lambda t: t.replace("|", "\\|")
        print("| %d | %s: `%s` | %s | %s |" % (i, what, esc(ss.replace(V, "")), esc(s), esc(p)))


if __name__ == "__main__":
    main()
