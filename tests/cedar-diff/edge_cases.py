#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Edge cases of Cedar's extension types and arithmetic, decided by cedarpy
and by portcullis: parse limits of datetime, duration, decimal and ip
strings, overflow at the int64 boundaries, like patterns, set and record
equality with extension values. Each expression becomes the condition of one
policy; decision, reasons and errors must match.

    .venv/bin/python tests/cedar-diff/edge_cases.py --bin build/portcullis
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import cedarpy
except ImportError:  # pragma: no cover
    sys.exit("edge-cases: cedarpy is not installed (pip install cedarpy)")


def expressions():
    exprs = []
    dts = ["2024-10-15","2024-10-15T11:35:00Z","2024-10-15T11:35:00.123Z","2024-10-15T11:35:00+0000","2024-10-15T11:35:00-0000",
     "2024-10-15T11:35:00.1Z","2024-10-15T11:35:00.1234Z","2024-10-15T11:35:00","2024-10-15T11:35Z","2024-02-29","2023-02-29","1900-02-29","2000-02-29",
     "0000-01-01","9999-12-31","2024-10-15T23:59:59+2359","2024-10-15T00:00:00-2359","2024-10-15T00:00:00+2400","2024-10-15T00:00:00+0060",
     "2024-1-15","2024-10-5","+2024-10-15","2024-10-15T11:35:00z","2024-10-15t11:35:00Z","2024-10-15 11:35:00Z","2024/10/15","20241015",
     "2024-10-15T11:35:00.000+01","2024-10-15T11:35:00.000+01:00","2024-10-15T11:35:60Z","2024-04-31","2024-06-31","2024-12-32","2024-00-01","2024-13-01",
     "٢٠٢٤-10-15"]
    for d in dts:
        exprs.append('datetime("%s") == datetime("%s")' % (d, d))
        exprs.append('datetime("%s").toTime() == duration("0ms")' % d)
        exprs.append('datetime("%s").toDate() == datetime("%s")' % (d, d))
    durs = ["1d","1h","1m","1s","1ms","0d","00001h","1d1h1m1s1ms","1d1ms","1h1d","1m1ms","1ms1s","-0ms","--1h","-1h","+1h","1H","1D","1 h","1h ","h1","1.5h","1mms",
     "9223372036854775807ms","9223372036854775808ms","-9223372036854775808ms","-9223372036854775809ms","106751991167d","106751991168d","-106751991167d",
     "2562047788015h","2562047788016h","153722867280912m","153722867280913m","9223372036854775s","9223372036854776s","1d1d","1msms","", "-", "1", "m", "ms1"]
    for d in durs:
        exprs.append('duration("%s") == duration("%s")' % (d, d))
        exprs.append('duration("%s").toMilliseconds() > 0' % d)
        exprs.append('duration("%s").toDays() >= 0' % d)
    decs = ["0.0","-0.0","1.0","1.00000","1.0000","-922337203685477.5808","-922337203685477.5809","922337203685477.5807","922337203685477.5808","0.1","-0.1",
     "00.1","+1.0","1e2","1.0e2",".5","5.","-","-.5","0x1.0","1,0","1.0 "," 1.0","١.٥","12345678901234567890.0","-0.0001","0.00001"]
    for d in decs:
        exprs.append('decimal("%s") == decimal("%s")' % (d, d))
        exprs.append('decimal("%s").lessThan(decimal("0.0"))' % d)
    ips = ["1.2.3.4","1.2.3.4/0","1.2.3.4/32","1.2.3.4/33","1.2.3.4/","1.2.3.4/-1","1.2.3.4/ 8","1.2.3.4/08","1.2.3.4/8 ","01.2.3.4","1.2.3.04","1.2.3.256",
     "1.2.3","1.2.3.4.5","::","::/0","::/128","::/129","::1/0128","1::","1:2:3:4:5:6:7:8","1:2:3:4:5:6:7:8:9","1:2:3:4:5:6:7::","::2:3:4:5:6:7:8","1::8",
     "1:::8",":1::8","1::8:","fffff::","FFFF::","::ffff:1.2.3.4","::1.2.3.4","1.2.3.4%eth0","fe80::1%eth0","[::1]","0:0:0:0:0:0:0:1","::0:1",
     "127.1","0x7f.0.0.1","1.2.3.4/24/8"," 1.2.3.4","1.2.3.4 ","10.0.0.0/8","224.0.0.0/4","224.0.0.0/3","127.0.0.0/7","127.0.0.0/8","::1/127","ff00::/7","ff00::/8"]
    for d in ips:
        exprs.append('ip("%s") == ip("%s")' % (d, d))
        exprs.append('ip("%s").isLoopback()' % d)
        exprs.append('ip("%s").isMulticast()' % d)
        exprs.append('ip("%s").isInRange(ip("0.0.0.0/1"))' % d)
        exprs.append('ip("%s").isInRange(ip("::/1"))' % d)
        exprs.append('ip("%s").isIpv4()' % d)
    # long arithmetic edges
    exprs += ['-9223372036854775808 * -1 == 0', '-9223372036854775808 * 1 == -9223372036854775808', '-(-9223372036854775807) == 9223372036854775807',
      '9223372036854775807 + -9223372036854775808 == -1', '(-9223372036854775808) - 1 == 0', '-9223372036854775808 - -9223372036854775808 == 0',
      '3037000500 * 3037000500 > 0', '3037000499 * 3037000499 > 0', '-3037000500 * 3037000500 < 0',
      'datetime("1970-01-01").offset(duration("-9223372036854775808ms")).toDate() == datetime("1970-01-01")',
      'datetime("1970-01-01").offset(duration("-9223372036854775808ms")).toTime() == duration("0ms")',
      'datetime("9999-12-31").offset(duration("9223372036854775807ms")) == datetime("1970-01-01")',
      'datetime("1970-01-01").offset(duration("-9223372036854775807ms")).durationSince(datetime("1970-01-02")) == duration("0ms")',
      'datetime("1969-12-31T23:59:59.999Z").toDate() == datetime("1969-12-31")', 'datetime("1969-12-31T23:59:59.999Z").toTime() == duration("23h59m59s999ms")',
      'duration("-1ms").toSeconds() == 0', 'duration("-1999ms").toSeconds() == -1', 'duration("-86400001ms").toDays() == -1',
      '"ab" like "a**b"', '"a*b" like "a\\\\*b"', '"" like ""', '"\\0" like "*"', '"\u00e9" like "?"', '"aaa" like "*a*a*a*"', '"aa" like "*a*a*a*"',
      '[1, [2]].contains([2])', '{a: [1,2]} == {a: [2,1,1]}', '[ip("1.2.3.4"), ip("1.2.3.4/32")].contains(ip("1.2.3.4"))',
      '[decimal("1.0"), decimal("1.00")] == [decimal("1.0")]', '[datetime("2024-01-01"), datetime("2024-01-01T00:00:00Z")] == [datetime("2024-01-01")]',
      'ip("::1") == ip("0:0:0:0:0:0:0:1")', 'ip("1.2.3.4/24") == ip("1.2.3.0/24")', 'ip("::ffff:0:0") == ip("::ffff:0:0")',
    ]

    return exprs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/portcullis")
    args = ap.parse_args()
    exprs = expressions()
    tmp = tempfile.mkdtemp(prefix="cedar-edge-")
    req = {"principal": {"type": "U", "id": "a"}, "action": {"type": "Action", "id": "a"},
           "resource": {"type": "U", "id": "a"}, "context": {}}
    n = 0
    for i, e in enumerate(exprs):
        pol = "permit(principal, action, resource) when { %s };" % e
        try:
            ps = cedarpy.PolicySet.from_str(pol)
        except Exception:
            print("the reference does not parse: %s" % e)
            continue
        r = cedarpy.is_authorized_batch([req], ps, [])[0]
        exp = {"decision": "allow" if r.decision == cedarpy.Decision.Allow else "deny",
               "reason": list(r.diagnostics.reasons), "errors": ["policy0"] if r.diagnostics.errors else []}
        with open(os.path.join(tmp, "t%d.cedar" % i), "w") as f:
            f.write(pol)
        with open(os.path.join(tmp, "t%d.json" % i), "w") as f:
            json.dump({"policies": "t%d.cedar" % i, "requests": [dict(req, **exp, description=e)]}, f)
        n += 1
    proc = subprocess.run([args.bin, "policy", "corpus", tmp], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    for line in lines:
        if line.startswith("FAIL"):
            m = re.search(r"/t(\d+)\.json", line)
            print(line, "<==", exprs[int(m.group(1))] if m else "?")
        elif line.startswith("  expected"):
            print(line)
    print("edge-cases: %d expressions; %s" % (n, lines[-1] if lines else "no output"))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
