#!/usr/bin/env python3
"""A tiny bug list kept in the agency folder (bugs.json).

Usage: bug_tracker.py add TITLE [--severity low|medium|high] [--branch B]
       bug_tracker.py list [--open]
       bug_tracker.py close ID
"""
import json
import os
import sys
import time

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bugs.json")
bugs = json.load(open(path)) if os.path.exists(path) else []
args = sys.argv[1:]
def opt(name, default):
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default
if not args or args[0] not in ("add", "list", "close"):
    print(__doc__.strip()); sys.exit(2)
if args[0] == "add" and len(args) > 1:
    bug = {"id": max([b["id"] for b in bugs] + [0]) + 1, "title": args[1], "severity": opt("--severity", "medium"),
           "branch": opt("--branch", ""), "open": True, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    bugs.append(bug); print(f"bug {bug['id']} filed")
elif args[0] == "close" and len(args) > 1:
    for b in bugs:
        if str(b["id"]) == args[1]: b["open"] = False; print(f"bug {b['id']} closed")
else:
    for b in bugs:
        if b["open"] or "--open" not in args:
            print(f"#{b['id']} [{'open' if b['open'] else 'closed'}] {b['severity']:6} {b['title']} {b['branch']}")
tmp = path + ".tmp"
json.dump(bugs, open(tmp, "w"), indent=2); os.replace(tmp, path)
