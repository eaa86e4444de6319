#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Differential test of portcullis' Cedar engine against the reference.

Generates random policy sets (templates and their links included), entity
stores and requests, decides each
request with cedarpy (Python bindings of the Rust `cedar-policy` crate),
writes the cases in the Cedar integration-test format with cedarpy's
answers as the expected results, and runs `portcullis policy corpus` on
them: any difference in decision, determining policies or erring policies
is a failure.

    .venv/bin/python tests/cedar-diff/cedar_diff.py --cases 100000 \
        --bin build/portcullis [--seed N] [--keep DIR]
"""
import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import cedarpy
except ImportError:  # pragma: no cover
    sys.exit("cedar-diff: cedarpy is not installed (pip install cedarpy)")

TYPES = ["User", "Group", "Doc", "App::Thing"]
IDS = ["a", "b", "c", "", "\u00e9t\u00e9", "q\"uote", "back\\slash", "\x00"]
ACTIONS = ["read", "write", "admin", "all"]
ATTRS = ["age", "name", "tags", "owner", "rec", "ip", "d", "when", "dur", "flag", "nums"]
LONGS = [0, 1, -1, 2, 7, 42, -100, 2**31, 2**62, 2**63 - 1, -(2**63), 3037000500, -3037000500]
STRINGS = ["", "a", "ab", "abc", "a*c", "ham and eggs", "*", "\\", "\u00e9", "x\"y", "a\x00b"]
IPS = ["10.0.0.1", "10.0.0.0/8", "192.168.1.7/24", "127.0.0.1", "::1", "ff00::2", "ff00::/8",
       "224.1.2.3", "1:2::3/64", "0.0.0.0/0", "::/0", "10.1.0.0/16", "1.2.3", "01.2.3.4",
       "::ffff:1.2.3.4", "1.2.3.4/33", "1::2::3"]
DECIMALS = ["0.0", "1.5", "-0.5", "-1.25", "3.1415", "922337203685477.5807",
            "-922337203685477.5808", "1.23456", "abc", "1.", "-0.0", "12.34"]
DATETIMES = ["1970-01-01", "2024-10-15", "2024-10-15T11:35:00Z", "2024-10-15T11:35:00.123+0130",
             "1969-12-31T23:59:59Z", "2024-02-29", "0000-01-01", "9999-12-31T23:59:59-2359",
             "2023-02-29", "2024-10-15T24:00:00Z", "2024-10-15 "]
DURATIONS = ["0ms", "1h", "-1d2h", "1d2h3m4s5ms", "90s", "-90s", "1s1d", "9223372036854775807ms",
             "-9223372036854775808ms", "1d9223372036854775807ms", "100ms", "", "2m70s"]


def cedar_str(s):
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\x00":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def cedar_pattern(s):
    out = []
    for ch in s:
        if ch == "*":
            out.append("\\*" if random.random() < 0.3 else "*")
        else:
            out.append(cedar_str(ch)[1:-1])
    return '"' + "".join(out) + '"'


class Gen:
    def __init__(self, rng):
        self.r = rng

    def pick(self, xs):
        return self.r.choice(xs)

    def chance(self, p):
        return self.r.random() < p

    def uid(self, existing=True):
        return (self.pick(TYPES), self.pick(IDS[:4] if existing else IDS))

    def uid_text(self, u):
        return "%s::%s" % (u[0], cedar_str(u[1]))

    # ---- values in entity / context JSON -------------------------------
    def ext_json(self, fn):
        # only values that parse: the reference refuses an entity file otherwise
        pool = {"ip": IPS[:12], "decimal": DECIMALS[:7], "datetime": DATETIMES[:8],
                "duration": DURATIONS[:6]}[fn]
        return {"__extn": {"fn": fn, "arg": self.pick(pool)}}

    def attr_json(self, name, depth=0):
        if self.chance(0.08):  # occasionally the "wrong" type
            name = self.pick(ATTRS)
        if name == "age":
            return self.pick(LONGS)
        if name == "name":
            return self.pick(STRINGS)
        if name == "tags":
            return [self.pick(STRINGS) for _ in range(self.r.randint(0, 3))]
        if name == "nums":
            return [self.pick(LONGS) for _ in range(self.r.randint(0, 3))]
        if name == "owner":
            t, i = self.uid()
            return {"__entity": {"type": t, "id": i}}
        if name == "rec":
            rec = {"k": self.pick(LONGS), "s": self.pick(STRINGS)}
            if depth < 2 and self.chance(0.3):
                rec["inner"] = self.attr_json("rec", depth + 1)
            if self.chance(0.3):
                del rec["k"]
            return rec
        if name == "ip":
            return self.ext_json("ip")
        if name == "d":
            return self.ext_json("decimal")
        if name == "when":
            return self.ext_json("datetime")
        if name == "dur":
            return self.ext_json("duration")
        return self.chance(0.5)

    def entities(self):
        uids = []
        for t in TYPES:
            for i in IDS[:4]:
                if self.chance(0.6):
                    uids.append((t, i))
        self.r.shuffle(uids)
        ents = []
        for k, (t, i) in enumerate(uids):
            attrs = {a: self.attr_json(a) for a in ATTRS if self.chance(0.5)}
            # parents only later in the list: a DAG
            parents = [{"type": pt, "id": pi} for (pt, pi) in uids[k + 1:] if self.chance(0.25)]
            e = {"uid": {"type": t, "id": i}, "attrs": attrs, "parents": parents}
            if self.chance(0.4):
                e["tags"] = {"t1": self.pick(STRINGS), "t2": self.pick(LONGS)}
                if self.chance(0.3):
                    del e["tags"]["t1"]
            ents.append(e)
        groups = {"read": ["all"], "write": ["all"], "admin": [], "all": []}
        for a in ACTIONS:
            ents.append({"uid": {"type": "Action", "id": a}, "attrs": {},
                         "parents": [{"type": "Action", "id": p} for p in groups[a]]})
        return ents

    def context(self):
        ctx = {}
        for name, fn in [("n", lambda: self.pick(LONGS)), ("s", lambda: self.pick(STRINGS)),
                         ("b", lambda: self.chance(0.5)), ("set", lambda: self.attr_json("nums")),
                         ("e", lambda: self.attr_json("owner")), ("ip", lambda: self.ext_json("ip")),
                         ("when", lambda: self.ext_json("datetime")),
                         ("dur", lambda: self.ext_json("duration")), ("rec", lambda: self.attr_json("rec"))]:
            if self.chance(0.7):
                ctx[name] = fn()
        return ctx

    # ---- expressions ---------------------------------------------------------
    def var(self):
        return self.pick(["principal", "resource", "principal", "resource", "action"])

    def entity(self, d):
        c = self.r.randint(0, 5)
        if c <= 1 or d <= 0:
            return self.var()
        if c == 2:
            return self.uid_text(self.uid(existing=self.chance(0.8)))
        if c == 3:
            return "%s.owner" % self.var()
        if c == 4:
            return "context.e"
        return "(if %s then %s else %s)" % (self.boolean(d - 1), self.entity(d - 1), self.entity(d - 1))

    def long(self, d):
        c = self.r.randint(0, 9)
        if c <= 1 or d <= 0:
            v = self.pick(LONGS)
            return str(v) if v >= 0 else "(%d)" % v
        if c == 2:
            return "%s.age" % self.var()
        if c == 3:
            return "context.n"
        if c == 4:
            return "(%s %s %s)" % (self.long(d - 1), self.pick(["+", "-", "*"]), self.long(d - 1))
        if c == 5:
            return "(-%s)" % self.long(d - 1)
        if c == 6:
            return "%s.getTag(\"t2\")" % self.var()
        if c == 7:
            return "%s.%s()" % (self.duration(d - 1),
                                self.pick(["toMilliseconds", "toSeconds", "toMinutes", "toHours",
                                           "toDays"]))
        if c == 8:
            return "%s.rec.k" % self.var()
        return "(if %s then %s else %s)" % (self.boolean(d - 1), self.long(d - 1), self.long(d - 1))

    def string(self, d):
        c = self.r.randint(0, 5)
        if c <= 1 or d <= 0:
            return cedar_str(self.pick(STRINGS))
        if c == 2:
            return "%s.name" % self.var()
        if c == 3:
            return "context.s"
        if c == 4:
            return "%s.getTag(\"t1\")" % self.var()
        return "%s[\"rec\"][\"s\"]" % self.var()

    def set_(self, d):
        c = self.r.randint(0, 5)
        if c == 0 or d <= 0:
            return "[%s]" % ", ".join(self.long(0) for _ in range(self.r.randint(0, 3)))
        if c == 1:
            return "[%s]" % ", ".join(self.string(d - 1) for _ in range(self.r.randint(0, 3)))
        if c == 2:
            return "[%s]" % ", ".join(self.entity(d - 1) for _ in range(self.r.randint(0, 3)))
        if c == 3:
            return "%s.tags" % self.var()
        if c == 4:
            return "context.set"
        return "%s.nums" % self.var()

    def record(self, d):
        c = self.r.randint(0, 3)
        if c == 0 or d <= 0:
            return "{k: %s, s: %s}" % (self.long(0), self.string(0))
        if c == 1:
            return "%s.rec" % self.var()
        if c == 2:
            return "context.rec"
        return "context"

    def ip(self, d):
        if d <= 0 or self.chance(0.5):
            return "ip(%s)" % cedar_str(self.pick(IPS))
        return self.pick(["%s.ip" % self.var(), "context.ip"])

    def decimal(self, d):
        if d <= 0 or self.chance(0.6):
            return "decimal(%s)" % cedar_str(self.pick(DECIMALS))
        return "%s.d" % self.var()

    def datetime(self, d):
        c = self.r.randint(0, 4)
        if c <= 1 or d <= 0:
            return "datetime(%s)" % cedar_str(self.pick(DATETIMES))
        if c == 2:
            return self.pick(["%s.when" % self.var(), "context.when"])
        if c == 3:
            return "%s.offset(%s)" % (self.datetime(d - 1), self.duration(d - 1))
        return "%s.toDate()" % self.datetime(d - 1)

    def duration(self, d):
        c = self.r.randint(0, 4)
        if c <= 1 or d <= 0:
            return "duration(%s)" % cedar_str(self.pick(DURATIONS))
        if c == 2:
            return self.pick(["%s.dur" % self.var(), "context.dur"])
        if c == 3:
            return "%s.durationSince(%s)" % (self.datetime(d - 1), self.datetime(d - 1))
        return "%s.toTime()" % self.datetime(d - 1)

    def any(self, d):
        return self.pick([self.long, self.string, self.entity, self.set_, self.record, self.boolean,
                          self.ip, self.decimal, self.datetime, self.duration])(max(d - 1, 0))

    def boolean(self, d):
        if d <= 0:
            return self.pick(["true", "false", "context.b", "%s.flag" % self.var()])
        c = self.r.randint(0, 22)
        if c == 0:
            return self.pick(["true", "false", "context.b", "%s.flag" % self.var()])
        if c == 1:
            return "(%s %s %s)" % (self.long(d - 1), self.pick(["<", "<=", ">", ">="]), self.long(d - 1))
        if c == 2:
            k = self.pick([self.datetime, self.duration])
            return "(%s %s %s)" % (k(d - 1), self.pick(["<", "<=", ">", ">="]), k(d - 1))
        if c == 3:
            return "(%s %s %s)" % (self.any(d), self.pick(["==", "!="]), self.any(d))
        if c == 4:
            return "(%s %s %s)" % (self.boolean(d - 1), self.pick(["&&", "||"]), self.boolean(d - 1))
        if c == 5:
            return "!%s" % self.boolean(d - 1)
        if c == 6:
            return "(if %s then %s else %s)" % (self.boolean(d - 1), self.boolean(d - 1), self.boolean(d - 1))
        if c == 7:
            path = self.pick(["age", "name", "rec", "rec.k", "rec.inner.s", "owner", "\"tags\"", "nope"])
            return "(%s has %s)" % (self.pick([self.entity, self.record])(d - 1), path)
        if c == 8:
            pat = "".join(self.pick(["a", "b", "*", "c", " ", "\u00e9"]) for _ in range(self.r.randint(0, 4)))
            return "(%s like %s)" % (self.string(d - 1), cedar_pattern(pat))
        if c == 9:
            rhs = self.entity(d - 1) if self.chance(0.6) else self.set_(d - 1)
            return "(%s in %s)" % (self.entity(d - 1), rhs)
        if c == 10:
            t = self.pick(TYPES)
            if self.chance(0.4):
                return "(%s is %s in %s)" % (self.entity(d - 1), t, self.entity(d - 1))
            return "(%s is %s)" % (self.entity(d - 1), t)
        if c == 11:
            return "%s.contains(%s)" % (self.set_(d - 1), self.any(d))
        if c == 12:
            return "%s.%s(%s)" % (self.set_(d - 1), self.pick(["containsAll", "containsAny"]), self.set_(d - 1))
        if c == 13:
            return "%s.isEmpty()" % self.set_(d - 1)
        if c == 14:
            return "%s.hasTag(%s)" % (self.entity(d - 1), self.pick(['"t1"', '"t2"', '"t3"', "context.s"]))
        if c == 15:
            return "%s.%s()" % (self.ip(d - 1), self.pick(["isIpv4", "isIpv6", "isLoopback", "isMulticast"]))
        if c == 16:
            return "%s.isInRange(%s)" % (self.ip(d - 1), self.ip(d - 1))
        if c == 17:
            return "%s.%s(%s)" % (self.decimal(d - 1), self.pick(["lessThan", "lessThanOrEqual", "greaterThan",
                                                                  "greaterThanOrEqual"]), self.decimal(d - 1))
        if c == 18:
            return "(%s.getTag(\"t2\") > 0)" % self.entity(d - 1)
        if c == 19:  # a type error now and then
            return self.pick([self.long, self.string, self.set_])(d - 1)
        if c == 20:
            return "(%s == %s)" % (self.record(d - 1), self.record(d - 1))
        if c == 21:  # unparenthesised now and then: the parsers must agree on refusing it
            fmt = "%s.rec.k == %s" if self.chance(0.1) else "(%s.rec.k == %s)"
            return fmt % (self.var(), self.long(d - 1))
        return "(%s.%s == %s)" % (self.var(), self.pick(ATTRS), self.any(d))

    def scope(self, var, slot=False):
        if slot:  # a template slot: ?principal / ?resource
            return self.pick(["%s == ?%s", "%s in ?%s", "%s is %s in ?%s"]).replace(
                "%s is %s", "%s is " + self.pick(TYPES)) % (var, var)
        c = self.r.randint(0, 7)
        if c <= 3:
            return var
        u = self.uid_text(self.uid())
        if c == 2:
            return "%s == %s" % (var, u)
        if c == 3:
            return "%s in %s" % (var, u)
        if c == 4:
            return "%s is %s" % (var, self.pick(TYPES))
        return "%s is %s in %s" % (var, self.pick(TYPES), u)

    def action_scope(self):
        c = self.r.randint(0, 5)
        if c <= 2:
            return "action"
        if c == 2:
            return "action == Action::%s" % cedar_str(self.pick(ACTIONS))
        if c == 3:
            return "action in Action::%s" % cedar_str(self.pick(ACTIONS))
        acts = self.r.sample(ACTIONS, self.r.randint(1, 3))
        return "action in [%s]" % ", ".join("Action::%s" % cedar_str(a) for a in acts)

    def policy(self, template=None):
        """A policy; with template = (principal slot?, resource slot?) a template."""
        out = []
        ps, rs = template or (False, False)
        if self.chance(0.2):
            out.append("@note(%s)\n" % cedar_str(self.pick(STRINGS)))
        out.append("%s(%s, %s, %s)" % (self.pick(["permit", "permit", "permit", "forbid"]),
                                       self.scope("principal", ps), self.action_scope(),
                                       self.scope("resource", rs)))
        for _ in range(self.r.randint(0, 2)):
            out.append("\n%s { %s }" % (self.pick(["when", "when", "unless"]), self.boolean(self.r.randint(1, 4))))
        out.append(";\n")
        return "".join(out)

    def request(self):
        p, r = self.uid(existing=self.chance(0.9)), self.uid(existing=self.chance(0.9))
        return {"principal": {"type": p[0], "id": p[1]},
                "action": {"type": "Action", "id": self.pick(ACTIONS)},
                "resource": {"type": r[0], "id": r[1]},
                "context": self.context()}


ERROR_ID = re.compile(r"policy `([^`]*)`")


def reference(requests, policies, entities, links=()):
    """cedarpy's answers; "policies" when it refuses the policy text, None
    when it refuses the entities, a link or the requests."""
    try:
        pset = cedarpy.PolicySet.from_str(policies)
    except Exception:
        return "policies"
    try:
        for l in links:
            pset = pset.with_linked(l["template"], l["id"], dict(l["values"]))
    except Exception:
        return None
    try:
        ents = cedarpy.Entities.from_json_str(json.dumps(entities))
        results = cedarpy.is_authorized_batch(requests, pset, ents)
    except Exception:
        return None
    out = []
    for res in results:
        d = res.diagnostics
        errors = sorted({m.group(1) for e in d.errors for m in [ERROR_ID.search(str(e))] if m})
        if len(errors) != len(d.errors):
            return None  # an error not tied to a policy: the request itself was refused
        out.append({"decision": "allow" if res.decision == cedarpy.Decision.Allow else "deny",
                    "reason": sorted(d.reasons), "errors": errors})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000, help="requests to compare (default 2000)")
    ap.add_argument("--per-file", type=int, default=10, help="requests per policy set")
    ap.add_argument("--bin", default="build/portcullis")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", help="write the cases here and keep them")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    g = Gen(rng)
    out = args.keep or tempfile.mkdtemp(prefix="cedar-diff-")
    os.makedirs(out, exist_ok=True)
    files = made = refused = 0
    unparsed = []  # policy texts the reference refuses: ours must refuse them too
    while made < args.cases:
        texts, links = [], []
        for i in range(rng.randint(1, 6)):
            slots = None
            if rng.random() < 0.15:
                slots = rng.choice([(True, False), (False, True), (True, True)])
            texts.append(g.policy(slots))
            for k in range(rng.randint(1, 3) if slots else 0):
                values = {}
                for on, name in zip(slots, ["?principal", "?resource"]):
                    if on:
                        u = g.uid(existing=rng.random() < 0.9)
                        values[name] = {"type": u[0], "id": u[1]}
                links.append({"template": "policy%d" % i, "id": "link%d_%d" % (i, k), "values": values})
        policies = "".join(texts)
        entities = g.entities()
        reqs = [g.request() for _ in range(min(args.per_file, args.cases - made))]
        ref = reference(reqs, policies, entities, links)
        if ref == "policies":
            if len(unparsed) < 200:
                unparsed.append(policies)
            ref = None
        if ref is None:
            refused += 1
            if refused > args.cases:
                sys.exit("cedar-diff: cedarpy refuses nearly every generated case; generator bug?")
            continue
        name = "case%06d" % files
        with open(os.path.join(out, name + ".cedar"), "w") as f:
            f.write(policies)
        with open(os.path.join(out, name + ".entities.json"), "w") as f:
            json.dump(entities, f)
        test = {"policies": name + ".cedar", "entities": name + ".entities.json", "links": links,
                "requests": [dict(r, **x, description="seed %d case %d" % (seed, files))
                             for r, x in zip(reqs, ref)]}
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(test, f)
        files += 1
        made += len(reqs)
    print("cedar-diff: seed %d, %d requests in %d policy sets (%d sets refused by cedarpy)" %
          (seed, made, files, refused), flush=True)
    parse_mismatch = 0
    for i, text in enumerate(unparsed):
        path = os.path.join(out, "refused%03d.cedar" % i)
        with open(path, "w") as f:
            f.write(text)
        check = subprocess.run([args.bin, "policy", "check", path], capture_output=True, text=True)
        if check.returncode == 0:
            parse_mismatch += 1
            print("FAIL %s: the reference refuses this policy text, portcullis accepts it" % path)
    print("cedar-diff: %d policy texts refused by the reference, %d accepted by portcullis" %
          (len(unparsed), parse_mismatch))
    proc = subprocess.run([args.bin, "policy", "corpus", out], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    fails = [l for l in lines if l.startswith("FAIL")]
    for l in fails[:20]:
        print(l)
    if proc.returncode not in (0, 1) or not lines:
        print(proc.stderr)
    print(lines[-1] if lines else "no output from %s" % args.bin)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    elif fails:
        print("cases kept in %s" % out)
    return 0 if proc.returncode == 0 and not fails and not parse_mismatch else 1


if __name__ == "__main__":
    sys.exit(main())
